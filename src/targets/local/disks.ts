/** Disk files for a local VM: copy-on-write overlays over a base image and blank data disks. */
import path from 'node:path';
import { InputError } from '../../core/errors.js';
import { imageInfo, type ImageInfo } from './image-info.js';
import { runTool } from './run.js';

const GiB = 1024 ** 3;

/**
 * A qcow2 overlay whose reads fall through to `base` (which is never written), grown to `sizeGb`
 * when given. The base is referenced by absolute path and explicit format, as qemu requires.
 */
export async function createOverlay(base: string, overlayPath: string, sizeGb?: number): Promise<ImageInfo> {
  const backing = await imageInfo(path.resolve(base));
  const args = ['create', '-q', '-f', 'qcow2', '-b', backing.path, '-F', backing.format, overlayPath];
  if (sizeGb !== undefined) {
    const sizeBytes = gibToBytes(sizeGb, 'sizeGb');
    if (sizeBytes < backing.virtualSizeBytes) {
      throw new InputError({
        field: 'sizeGb',
        message: `overlay of ${sizeGb} GiB is smaller than its base image (${(backing.virtualSizeBytes / GiB).toFixed(2)} GiB)`,
      });
    }
    args.push(String(sizeBytes));
  }
  await runTool('qemu-img', args);
  return imageInfo(overlayPath);
}

/** An empty, sparse qcow2 disk. */
export async function createBlankDisk(diskPath: string, sizeGb: number): Promise<ImageInfo> {
  await runTool('qemu-img', ['create', '-q', '-f', 'qcow2', diskPath, String(gibToBytes(sizeGb, 'sizeGb'))]);
  return imageInfo(diskPath);
}

function gibToBytes(sizeGb: number, field: string): number {
  if (!Number.isFinite(sizeGb) || sizeGb <= 0) throw new InputError({ field, message: `disk size must be a positive number of GiB, got ${sizeGb}` });
  // Whole MiB keeps every format (and Azure's VHD rule) happy.
  return Math.ceil((sizeGb * GiB) / 2 ** 20) * 2 ** 20;
}
