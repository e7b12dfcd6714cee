/**
 * Tar archives for bundles and image archives, through tar-stream: written with fixed owners,
 * modes and times (the same files give the same bytes), each entry hashed on its way in; and read
 * back as a stream, each entry hashed on its way out, without unpacking anything to disk.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { once } from 'node:events';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';

export interface TarInput {
  /** Path inside the archive. */
  name: string;
  /** A local file to copy in, or the content itself. */
  file?: string;
  content?: Buffer;
}

export interface Digest {
  sha256: string;
  size: number;
}

const EPOCH = new Date(0);

/**
 * Writes `entries` in the order given to `out`; returns the archive's digest and, per entry, the
 * digest of what went in (so a caller can compare it with what it expected).
 */
export async function writeTar(out: string, entries: TarInput[], signal?: AbortSignal): Promise<{ archive: Digest; entries: Map<string, Digest> }> {
  const pack = tar.pack();
  const archiveHash = createHash('sha256');
  let archiveSize = 0;
  const written = pipeline(
    Readable.from(pack),
    new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        archiveHash.update(chunk);
        archiveSize += chunk.length;
        callback(null, chunk);
      },
    }),
    createWriteStream(out),
    ...(signal ? [{ signal }] : []),
  );
  written.catch(() => {}); // awaited below; an early failure must not go unhandled meanwhile
  const digests = new Map<string, Digest>();
  try {
    for (const entry of entries) {
      signal?.throwIfAborted();
      const size = entry.content ? entry.content.length : (await stat(entry.file ?? '')).size;
      const hash = createHash('sha256');
      let ended: () => void = () => {};
      let failed: (err: Error) => void = () => {};
      const finished = new Promise<void>((resolve, reject) => {
        ended = resolve;
        failed = reject;
      });
      const sink = pack.entry({ name: entry.name, size, mode: 0o644, mtime: EPOCH, uid: 0, gid: 0, uname: 'root', gname: 'root', type: 'file' }, (err) => (err ? failed(err) : ended()));
      const source: Iterable<Buffer> | AsyncIterable<Buffer> = entry.content ? [entry.content] : (createReadStream(entry.file ?? '', { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>);
      let copied = 0;
      for await (const chunk of source) {
        hash.update(chunk);
        copied += chunk.length;
        if (!sink.write(chunk)) await once(sink, 'drain');
      }
      sink.end(undefined);
      await finished;
      if (copied !== size) throw new Error(`${entry.file ?? entry.name} changed size while being archived`);
      digests.set(entry.name, { sha256: hash.digest('hex'), size });
    }
    pack.finalize();
  } catch (err) {
    pack.destroy(err instanceof Error ? err : new Error(String(err)));
    await written.catch(() => {});
    throw err;
  }
  await written;
  return { archive: { sha256: archiveHash.digest('hex'), size: archiveSize }, entries: digests };
}

export interface ReadEntry extends Digest {
  name: string;
  type: string;
  /** The entry's bytes, when the caller asked to keep them (small files such as a manifest). */
  content?: Buffer;
}

/**
 * Reads every entry of a tar file, hashing each; `keep(name)` says which entries' bytes to return.
 * Calls `onEntry` as each entry ends (in archive order).
 */
export async function readTar(file: string, options: { keep?: (name: string) => boolean; onEntry?: (entry: ReadEntry) => void; signal?: AbortSignal } = {}): Promise<void> {
  const extract = tar.extract();
  const feeding = pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), extract, ...(options.signal ? [{ signal: options.signal }] : []));
  feeding.catch(() => {});
  for await (const entry of extract) {
    const hash = createHash('sha256');
    const keep = options.keep?.(entry.header.name) ?? false;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of entry as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
      if (keep) chunks.push(chunk);
    }
    options.onEntry?.({ name: entry.header.name, type: entry.header.type ?? 'file', sha256: hash.digest('hex'), size, ...(keep ? { content: Buffer.concat(chunks) } : {}) });
  }
  await feeding;
}
