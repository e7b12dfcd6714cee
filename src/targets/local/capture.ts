/**
 * exportDisk: turns a VM disk (any format, possibly an overlay chain) into standalone files for
 * each destination: compressed qcow2, raw, streamOptimized VMDK (AWS), fixed VHD rounded to 1 MiB
 * (Azure) and a GCE tar.gz holding a sparse disk.raw rounded to 1 GiB. Each file is written under a
 * temporary name and renamed when complete; its sha256 is computed by streaming it once. The
 * temporary names follow from the file's (exportTemporaries), so that a kiln killed mid-export
 * leaves nothing that deleting the file's ledger entry does not also delete.
 */
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { InputError } from '../../core/errors.js';
import { imageInfo, type ImageInfo } from './image-info.js';
import { runTool, type LogFn } from './run.js';
import { sha256File } from '../../core/sha256.js';

export type ExportFormat = 'qcow2' | 'raw' | 'vmdk' | 'vhd' | 'gceTar';
export type ExportOutputs = Partial<Record<ExportFormat, string>>;

export interface ExportedFile {
  format: ExportFormat;
  path: string;
  sizeBytes: number;
  sha256: string;
  /** Disk size the guest sees (after any rounding the format required). */
  virtualSizeBytes: number;
}

export interface ExportOptions {
  onLog?: LogFn;
  signal?: AbortSignal;
}

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const ORDER: ExportFormat[] = ['qcow2', 'raw', 'vmdk', 'vhd', 'gceTar'];

/** What an export to `target` writes before it is complete: the file itself, and scratch space. */
export function exportTemporaries(target: string): { partial: string; scratch: string } {
  return { partial: `${target}.partial`, scratch: `${target}.scratch` };
}

export async function exportDisk(source: string, outputs: ExportOutputs, options: ExportOptions = {}): Promise<Partial<Record<ExportFormat, ExportedFile>>> {
  const formats = ORDER.filter((f) => outputs[f] !== undefined);
  if (formats.length === 0) throw new InputError({ field: 'outputs', message: 'no export format requested' });
  const info = await imageInfo(path.resolve(source));
  const result: Partial<Record<ExportFormat, ExportedFile>> = {};
  for (const format of formats) {
    const target = path.resolve(outputs[format] as string);
    options.onLog?.(`exporting ${info.path} as ${format} to ${target}`);
    const { partial, scratch } = exportTemporaries(target);
    try {
      await removeTemporaries(target); // a killed export's
      const virtualSizeBytes = await writeFormat(format, info, { out: partial, scratch }, options);
      await rename(partial, target);
      const [sizeBytes, sha256] = await Promise.all([stat(target).then((s) => s.size), sha256File(target)]);
      result[format] = { format, path: target, sizeBytes, sha256, virtualSizeBytes };
    } finally {
      await removeTemporaries(target);
    }
  }
  return result;
}

/** Removes what an export to `target` may have left (a killed kiln's, or a failed export's). */
export async function removeTemporaries(target: string): Promise<void> {
  const { partial, scratch } = exportTemporaries(target);
  await Promise.all([rm(partial, { force: true }), rm(scratch, { recursive: true, force: true })]);
}

async function writeFormat(format: ExportFormat, source: ImageInfo, { out, scratch }: { out: string; scratch: string }, options: ExportOptions): Promise<number> {
  const run = (args: string[]) => runTool('qemu-img', args, { onLog: options.onLog, signal: options.signal });
  const from = ['-f', source.format, source.path];
  switch (format) {
    case 'qcow2':
      await run(['convert', '-c', ...from, '-O', 'qcow2', out]);
      return source.virtualSizeBytes;
    case 'raw':
      await run(['convert', ...from, '-O', 'raw', out]);
      return source.virtualSizeBytes;
    case 'vmdk':
      await run(['convert', ...from, '-O', 'vmdk', '-o', 'subformat=streamOptimized', out]);
      return source.virtualSizeBytes;
    case 'vhd':
      return withSize(source, roundUp(source.virtualSizeBytes, MiB), scratch, async (input) => {
        // force_size keeps the exact size instead of rounding to a CHS geometry, as Azure requires.
        await run(['convert', ...input, '-O', 'vpc', '-o', 'subformat=fixed,force_size=on', out]);
      });
    case 'gceTar':
      return withSize(source, roundUp(source.virtualSizeBytes, GiB), scratch, async (input) => {
        // GCE wants exactly one member named disk.raw, in GNU's old format so sparse runs survive.
        await run(['convert', ...input, '-O', 'raw', path.join(scratch, 'disk.raw')]);
        await runTool('tar', ['--format=oldgnu', '--sparse', '-czf', out, '-C', scratch, 'disk.raw'], { onLog: options.onLog, signal: options.signal });
      });
  }
}

/**
 * Calls `write` with qemu-img input arguments for `source` seen at `size` bytes: the source itself
 * when it already has that size, else a throwaway overlay grown to it in `scratch` (no copy of the
 * data). The caller removes `scratch`. Returns `size`.
 */
async function withSize(source: ImageInfo, size: number, scratch: string, write: (input: string[]) => Promise<void>): Promise<number> {
  await mkdir(scratch, { recursive: true });
  let input = ['-f', source.format, source.path];
  if (size !== source.virtualSizeBytes) {
    const grown = path.join(scratch, 'grown.qcow2');
    await runTool('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', source.path, '-F', source.format, grown, String(size)]);
    input = ['-f', 'qcow2', grown];
  }
  await write(input);
  return size;
}

function roundUp(value: number, unit: number): number {
  return Math.ceil(value / unit) * unit;
}

