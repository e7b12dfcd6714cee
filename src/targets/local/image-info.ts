/** What qemu-img knows about a disk image: format, sizes and backing file. */
import { KilnError } from '../../core/errors.js';
import { runTool } from './run.js';

export interface ImageInfo {
  path: string;
  /** qemu's format name: qcow2, raw, vmdk, vpc, ... */
  format: string;
  virtualSizeBytes: number;
  /** Bytes the file takes on the host disk. */
  actualSizeBytes: number;
  backingFile?: string;
  backingFormat?: string;
}

interface QemuImgInfo {
  format?: string;
  'virtual-size'?: number;
  'actual-size'?: number;
  'full-backing-filename'?: string;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
}

export async function imageInfo(path: string): Promise<ImageInfo> {
  // -U: reading the header of an image a running VM holds open is safe and must not fail on its lock.
  const { stdout } = await runTool('qemu-img', ['info', '-U', '--output=json', path]);
  let info: QemuImgInfo;
  try {
    info = JSON.parse(stdout) as QemuImgInfo;
  } catch (err) {
    throw new KilnError('LOCAL', `qemu-img info printed something that is not JSON for ${path}`, { file: path }, { cause: err });
  }
  if (typeof info.format !== 'string' || typeof info['virtual-size'] !== 'number') {
    throw new KilnError('LOCAL', `qemu-img info gave no format or size for ${path}`, { file: path });
  }
  const backingFile = info['full-backing-filename'] ?? info['backing-filename'];
  return {
    path,
    format: info.format,
    virtualSizeBytes: info['virtual-size'],
    actualSizeBytes: info['actual-size'] ?? 0,
    ...(backingFile ? { backingFile } : {}),
    ...(info['backing-filename-format'] ? { backingFormat: info['backing-filename-format'] } : {}),
  };
}
