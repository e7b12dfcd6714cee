/** A file of random bytes (nothing compresses or dedups), written in 4 MiB blocks; returns its sha256. */
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';

const BLOCK = 4 * 1024 * 1024;

export function writeRandomFile(path: string, bytes: number): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'w');
  try {
    const block = Buffer.alloc(BLOCK);
    for (let written = 0; written < bytes; written += block.length) {
      randomFillSync(block);
      hash.update(block);
      writeSync(fd, block);
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}
