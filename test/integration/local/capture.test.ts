import { watch } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LedgerEntry } from '../../../src/pipeline/ledger.js';
import { exportDisk, exportTemporaries, type ExportedFile } from '../../../src/targets/local/capture.js';
import { LocalDriver } from '../../../src/targets/local/driver.js';
import { createOverlay } from '../../../src/targets/local/disks.js';
import { imageInfo } from '../../../src/targets/local/image-info.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
// Deliberately not a whole number of MiB, so the VHD and GCE roundings show.
const SOURCE_BYTES = 100 * MiB + 512;
let dir: string;
let source: string;

async function sha256sum(file: string): Promise<string> {
  const { stdout } = await execa('sha256sum', [file]);
  return stdout.split(' ')[0] ?? '';
}

/** Same guest-visible content (qemu-img compare treats a larger tail of zeros as equal). */
async function expectSameContent(file: string, format: string): Promise<void> {
  await execa('qemu-img', ['compare', '-f', 'qcow2', '-F', format, source, file]);
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-capture-test-'));
  // A raw base with data at both ends, under an overlay with more data: the export must flatten it.
  const base = path.join(dir, 'base.raw');
  await execa('qemu-img', ['create', '-q', '-f', 'raw', base, String(SOURCE_BYTES)]);
  await execa('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 0 2M', '-c', `write -P 0x22 ${SOURCE_BYTES - 4096} 4096`, base]);
  source = path.join(dir, 'vm.qcow2');
  await createOverlay(base, source);
  await execa('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x33 10M 1M', source]);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('exportDisk', () => {
  let results: Awaited<ReturnType<typeof exportDisk>>;
  const out = (name: string) => path.join(dir, 'out', name);
  /** Every name that appeared in the output dir during the export. */
  const appeared = new Set<string>();

  beforeAll(async () => {
    await mkdir(path.join(dir, 'out'));
    const watcher = watch(path.join(dir, 'out'), (_event, name) => name && appeared.add(name));
    try {
      results = await exportDisk(source, {
        qcow2: out('image.qcow2'),
        raw: out('image.raw'),
        vmdk: out('image.vmdk'),
        vhd: out('image.vhd'),
        gceTar: out('image.tar.gz'),
      });
    } finally {
      watcher.close();
    }
  });

  it('writes nothing in the output dir but the outputs and their exportTemporaries, which a killed export leaves to cleanup', async () => {
    const outputs = Object.values(results).map((file) => file.path);
    const allowed = outputs.flatMap((file) => [file, ...Object.values(exportTemporaries(file))]).map((file) => path.basename(file));
    expect([...appeared].filter((name) => !allowed.includes(name))).toEqual([]);
    // the scratch space was used (vhd, GCE tar), so the watch saw the temporaries at all
    expect(appeared).toContain(path.basename(exportTemporaries(out('image.tar.gz')).scratch));

    // what a kill mid-export leaves goes with the output's ledger entry
    const killed = out('killed.raw');
    const { partial, scratch } = exportTemporaries(killed);
    await mkdir(scratch);
    await Promise.all([writeFile(partial, 'half'), writeFile(path.join(scratch, 'disk.raw'), 'half')]);
    const entry: LedgerEntry = { seq: 1, build: 'b', target: 'local', kind: 'file', name: killed, id: killed, role: 'artifact', createdAt: '' };
    await new LocalDriver().destroy(entry, { log: () => {}, signal: AbortSignal.timeout(10_000) });
    expect((await readdir(path.join(dir, 'out'))).filter((name) => name.startsWith('killed'))).toEqual([]);
  });

  it('reports path, size and a correct sha256 for every output, and leaves no scratch files', async () => {
    expect(Object.keys(results).sort()).toEqual(['gceTar', 'qcow2', 'raw', 'vhd', 'vmdk']);
    for (const file of Object.values(results) as ExportedFile[]) {
      expect(file.sizeBytes).toBe((await stat(file.path)).size);
      expect(file.sha256).toBe(await sha256sum(file.path));
    }
    expect((await readdir(path.join(dir, 'out'))).sort()).toEqual(['image.qcow2', 'image.raw', 'image.tar.gz', 'image.vhd', 'image.vmdk']);
  });

  it('writes a standalone compressed qcow2', async () => {
    const info = await imageInfo(out('image.qcow2'));
    expect(info.format).toBe('qcow2');
    expect(info.backingFile).toBeUndefined();
    expect(info.virtualSizeBytes).toBe(SOURCE_BYTES);
    await expectSameContent(out('image.qcow2'), 'qcow2');
    // Compressed clusters: the 3 MiB of patterned data shrinks to almost nothing.
    expect(results.qcow2?.sizeBytes).toBeLessThan(MiB);
  });

  it('writes raw and streamOptimized VMDK', async () => {
    await expectSameContent(out('image.raw'), 'raw');
    expect(results.raw?.sizeBytes).toBe(SOURCE_BYTES);
    const { stdout } = await execa('qemu-img', ['info', '--output=json', out('image.vmdk')]);
    expect(JSON.parse(stdout)).toMatchObject({ format: 'vmdk', 'format-specific': { data: { 'create-type': 'streamOptimized' } } });
    await expectSameContent(out('image.vmdk'), 'vmdk');
  });

  it('writes a fixed VHD whose size is rounded up to a whole MiB', async () => {
    const rounded = 101 * MiB;
    expect(results.vhd?.virtualSizeBytes).toBe(rounded);
    // A fixed VHD is the disk followed by a 512-byte footer.
    expect(results.vhd?.sizeBytes).toBe(rounded + 512);
    const footer = (await readFile(out('image.vhd'))).subarray(rounded);
    expect(footer.subarray(0, 8).toString('latin1')).toBe('conectix');
    expect(footer.readUInt32BE(60)).toBe(2); // disk type 2: fixed
    expect(Number(footer.readBigUInt64BE(48))).toBe(rounded); // current size
    await expectSameContent(out('image.vhd'), 'vpc');
  });

  it('writes a GCE tar.gz with one sparse disk.raw in oldgnu format, rounded to a whole GiB', async () => {
    expect(results.gceTar?.virtualSizeBytes).toBe(GiB);
    const tar = gunzipSync(await readFile(out('image.tar.gz')));
    expect(tar.subarray(0, 8).toString('latin1')).toBe('disk.raw');
    expect(tar.subarray(257, 265).toString('latin1')).toBe('ustar  \0'); // GNU (oldgnu) magic
    expect(tar.subarray(156, 157).toString('latin1')).toBe('S'); // sparse member
    expect(tar.length).toBeLessThan(20 * MiB);

    const extracted = path.join(dir, 'extracted');
    await mkdir(extracted);
    await execa('tar', ['-xzf', out('image.tar.gz'), '-C', extracted]);
    expect(await readdir(extracted)).toEqual(['disk.raw']);
    expect((await stat(path.join(extracted, 'disk.raw'))).size).toBe(GiB);
    await expectSameContent(path.join(extracted, 'disk.raw'), 'raw');
  });

  it('refuses an empty request', async () => {
    await expect(exportDisk(source, {})).rejects.toThrow(/no export format/);
  });
});
