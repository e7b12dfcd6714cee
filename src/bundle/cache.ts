/**
 * The bundle cache: verified artifacts stored by their sha256 (`sha256/<hex>`), so re-running
 * `kiln bundle` (or bundling another version that shares K3s, Helm or images) reuses them instead
 * of downloading again. A file enters the store only after its checksum matched, by an atomic
 * rename from `tmp/` on the same file system. Images are also remembered by their source digest
 * (`images/<key>.json`), since their archive's sha256 is only known once copied.
 *
 * Stored files are checked again as they are packed into a bundle (bundle-file.ts hashes while
 * writing); one that no longer matches is dropped from the store.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { InputError } from '../core/errors.js';

export interface ImageRecord {
  sha256: string;
  size: number;
}

export class ArtifactCache {
  private constructor(readonly dir: string) {}

  static async open(dir: string): Promise<ArtifactCache> {
    // skopeo's "oci:<path>:<name>" cannot hold a path with a colon in it.
    if (dir.includes(':')) throw new InputError({ field: '--cache-dir', message: `expected a path without ":", found ${JSON.stringify(dir)}` });
    for (const sub of ['sha256', 'images', 'tmp']) await mkdir(path.join(dir, sub), { recursive: true });
    return new ArtifactCache(path.resolve(dir));
  }

  file(sha256: string): string {
    return path.join(this.dir, 'sha256', sha256);
  }

  /** The stored file's size, or undefined when it is not in the store. */
  async has(sha256: string): Promise<number | undefined> {
    const info = await stat(this.file(sha256)).catch(() => undefined);
    return info?.isFile() ? info.size : undefined;
  }

  /** Moves a verified file into the store. */
  async put(file: string, sha256: string): Promise<string> {
    await rename(file, this.file(sha256));
    return this.file(sha256);
  }

  async drop(sha256: string): Promise<void> {
    await rm(this.file(sha256), { force: true });
  }

  /** A fresh scratch directory on the cache's file system; remove it when done. */
  async scratch(): Promise<string> {
    return mkdtemp(path.join(this.dir, 'tmp', 'work-'));
  }

  async image(key: string): Promise<ImageRecord | undefined> {
    const text = await readFile(this.imageRecordFile(key), 'utf8').catch(() => undefined);
    if (!text) return undefined;
    const record = JSON.parse(text) as ImageRecord;
    return (await this.has(record.sha256)) === record.size ? record : undefined;
  }

  async rememberImage(key: string, record: ImageRecord): Promise<void> {
    const file = this.imageRecordFile(key);
    await writeFile(`${file}.tmp`, JSON.stringify(record));
    await rename(`${file}.tmp`, file);
  }

  private imageRecordFile(key: string): string {
    return path.join(this.dir, 'images', `${createHash('sha256').update(key).digest('hex')}.json`);
  }
}
