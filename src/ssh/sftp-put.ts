/**
 * Parallel SFTP writes of a local file into an existing remote file, from a given offset: like
 * ssh2's fastPut, but resumable. Many writes are in flight at once; the function tracks the
 * *acknowledged prefix* (every byte below it has been written by the server), which is where a
 * later attempt can safely resume after a dropped connection. Writes beyond that prefix may or may
 * not have landed; since each write puts the same bytes at the same place, writing them again is
 * harmless.
 */
import { open } from 'node:fs/promises';
import type { SFTPWrapper } from 'ssh2';

export interface SftpPutOptions {
  /** Bytes per write request (OpenSSH accepts up to 255 KiB). Default 128 KiB. */
  chunkSize?: number;
  /** Write requests in flight. Default 32. */
  concurrency?: number;
  /** Called as the acknowledged prefix grows. */
  onAcked?: (prefix: number) => void;
  /** Abandons the transfer at once (pending callbacks of a dead channel may never come). */
  signal?: AbortSignal;
}

export interface SftpPutState {
  /** Every byte below this offset is acknowledged by the server. */
  acked: number;
}

/**
 * Writes bytes [start, size) of `localPath` to `remotePath` (which must exist; it is opened without
 * truncation). `state.acked` is kept current even when this rejects.
 */
export async function sftpPut(sftp: SFTPWrapper, localPath: string, remotePath: string, start: number, size: number, state: SftpPutState, options: SftpPutOptions = {}): Promise<void> {
  const chunkSize = options.chunkSize ?? 128 * 1024;
  const concurrency = options.concurrency ?? 32;
  state.acked = start;
  if (start >= size) return;
  const signal = options.signal;
  signal?.throwIfAborted();
  // Every wait below races this, so an abandoned transfer never hangs on a callback.
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal?.reason ?? new Error('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => {});
  const race = <T>(promise: Promise<T>): Promise<T> => Promise.race([promise, aborted]);
  const file = await open(localPath, 'r');
  let handle: Buffer | undefined;
  try {
    handle = await race(new Promise<Buffer>((resolve, reject) => sftp.open(remotePath, 'r+', (err, h) => (err ? reject(err) : resolve(h)))));
    const remote = handle;
    let next = start;
    // Chunks sent and not yet acknowledged, in offset order; acknowledged ones are marked done.
    const pending: { end: number; done: boolean }[] = [];
    let failed = false;
    const advance = (): void => {
      while (pending[0]?.done) state.acked = (pending.shift() as { end: number }).end;
      options.onAcked?.(state.acked);
    };
    const worker = async (): Promise<void> => {
      while (next < size && !failed && !signal?.aborted) {
        const offset = next;
        const length = Math.min(chunkSize, size - offset);
        next += length;
        const entry = { end: offset + length, done: false };
        pending.push(entry);
        const buffer = Buffer.allocUnsafe(length);
        const { bytesRead } = await race(file.read(buffer, 0, length, offset));
        if (bytesRead !== length) throw new Error(`${localPath} changed while uploading (short read at ${offset})`);
        await race(new Promise<void>((resolve, reject) => sftp.write(remote, buffer, 0, length, offset, (err) => (err ? reject(err) : resolve()))));
        entry.done = true;
        advance();
      }
    };
    const workers = Array.from({ length: concurrency }, () =>
      worker().catch((err: unknown) => {
        failed = true;
        throw err;
      }),
    );
    const results = await Promise.allSettled(workers);
    signal?.throwIfAborted();
    const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected) throw rejected.reason;
  } finally {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    await file.close();
    if (handle && !signal?.aborted) {
      const h = handle;
      await race(new Promise<void>((resolve) => sftp.close(h, () => resolve()))).catch(() => {});
    }
  }
}
