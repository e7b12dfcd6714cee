/**
 * describeBaseImage: accept an upstream cloud image (qcow2 or raw) given by path as the base of a
 * local build, after checking qemu-img can read it and what format it really is.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import { InputError } from '../../../core/errors.js';
import { imageInfo } from '../image-info.js';

export interface BaseImageDescription {
  path: string;
  format: 'qcow2' | 'raw';
  virtualSizeBytes: number;
  actualSizeBytes: number;
  backingFile?: string;
}

export async function describeBaseImage(file: string): Promise<BaseImageDescription> {
  const absolute = path.resolve(file);
  await access(absolute).catch(() => {
    throw new InputError({ file: absolute, message: 'base image not found or not readable' });
  });
  const info = await imageInfo(absolute);
  if (info.format !== 'qcow2' && info.format !== 'raw') {
    throw new InputError({ file: absolute, message: `base image format is ${info.format}; convert it to qcow2 or raw first` });
  }
  return {
    path: absolute,
    format: info.format,
    virtualSizeBytes: info.virtualSizeBytes,
    actualSizeBytes: info.actualSizeBytes,
    ...(info.backingFile ? { backingFile: info.backingFile } : {}),
  };
}
