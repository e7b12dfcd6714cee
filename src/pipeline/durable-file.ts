/**
 * Atomic, durable JSON files: write to a temporary file, fsync it, rename it over the target, fsync
 * the directory. A reader (or a crash at any point) sees the old content or the new, never half;
 * a process killed mid-write leaves its temporary file, which the next reader removes.
 */
import { open, readdir, readFile, rename, mkdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isProcessAlive } from '../core/process-alive.js';

export async function writeJsonDurably(path: string, value: unknown, mode = 0o600): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  const file = await open(tmp, 'w', mode);
  try {
    await file.writeFile(`${JSON.stringify(value, null, 2)}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, path);
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

export async function readJsonIfExists<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Group commit for a file that many callers change: each caller changes the data in memory, then
 * awaits `commit()`, which resolves once a write that started after that call has finished. Calls
 * made while a write is in flight share the next write, so fifteen builds changing the ledger or
 * the manifest at once cost two writes, not fifteen, and none waits behind the others' fsyncs.
 */
export class GroupCommit {
  private inFlight: Promise<void> = Promise.resolve();
  private next: Promise<void> | undefined;

  constructor(private readonly write: () => Promise<void>) {}

  commit(): Promise<void> {
    if (this.next) return this.next;
    const next = this.inFlight
      .catch(() => undefined)
      .then(() => {
        // From here on, a change needs another write: this one may have serialized the data already.
        this.next = undefined;
        return this.write();
      });
    this.next = next;
    this.inFlight = next;
    return next;
  }
}

/** Removes the `<path>.<pid>.tmp` files of writers that died mid-write (kill -9): the file itself is whole. */
export async function removeStaleTemps(path: string): Promise<void> {
  const prefix = `${basename(path)}.`;
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(name.startsWith(prefix) && name.endsWith('.tmp') ? name.slice(prefix.length, -'.tmp'.length) : NaN);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !isProcessAlive(pid)) await rm(join(dirname(path), name), { force: true });
  }
}
