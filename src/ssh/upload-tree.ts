/**
 * Uploading a directory as one tar stream: `tar -c` here piped into `tar -x` there over a single
 * exec channel. One round trip, not one per file.
 */
import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { KilnError } from '../core/errors.js';
import type { ExecResult } from './exec.js';
import { DEFAULT_UPLOAD_TIMEOUT_MS, type UploadHost, type UploadOptions } from './upload-host.js';

export interface UploadTreeResult {
  /** Size of the tar stream. */
  bytes: number;
  durationMs: number;
}

// env: KILN_DEST. Owners are not taken from the archive: files belong to whoever unpacks them.
const UNTAR = 'mkdir -p -- "$KILN_DEST" && tar -x -f - -C "$KILN_DEST" --no-same-owner';

/** Copies the contents of `localDir` into `remoteDir` (created if missing) as one tar stream. */
export async function uploadTree(host: UploadHost, localDir: string, remoteDir: string, options: UploadOptions = {}): Promise<UploadTreeResult> {
  const info = await stat(localDir).catch(() => undefined);
  if (!info?.isDirectory()) throw new KilnError('INPUT', `cannot upload ${localDir}: not a directory`, { path: localDir });
  const started = Date.now();
  host.log(`ssh: uploading ${localDir}/ to ${host.target}:${remoteDir}/ as one tar stream`);
  const tar = spawn('tar', ['-c', '-f', '-', '-C', localDir, '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tarError = '';
  let bytes = 0;
  tar.stderr.on('data', (chunk: Buffer) => (tarError += chunk.toString()));
  // Counted on the way through (a 'data' listener here would start the flow before the channel is open).
  const counted = tar.stdout.pipe(
    new Transform({
      highWaterMark: 1 << 20,
      transform(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length;
        callback(null, chunk);
      },
    }),
  );
  const tarExit = new Promise<number | null>((resolve) => {
    tar.once('error', (err) => {
      tarError += err.message;
      resolve(null);
    });
    tar.once('close', (code) => resolve(code));
  });
  let result: ExecResult;
  try {
    result = await host.exec(UNTAR, {
      env: { KILN_DEST: remoteDir },
      sudo: options.sudo,
      stdin: counted,
      timeoutMs: options.timeoutMs ?? DEFAULT_UPLOAD_TIMEOUT_MS,
      signal: options.signal,
      onLine: () => {},
      quiet: true,
    });
  } finally {
    if (tar.exitCode === null) tar.kill('SIGKILL');
  }
  const tarCode = await tarExit;
  if (tarCode !== 0) throw new KilnError('LOCAL', `tar -c of ${localDir} failed (exit ${tarCode}): ${tarError.trim()}`, { path: localDir });
  if (result.code !== 0) {
    throw new KilnError('SSH', `unpacking into ${host.target}:${remoteDir} failed (exit ${result.code ?? result.signal}):\n${result.tail.join('\n')}`, {
      target: host.target,
      path: remoteDir,
    });
  }
  const durationMs = Date.now() - started;
  host.log(`ssh: uploaded ${localDir}/ (${bytes} bytes of tar) in ${durationMs} ms`);
  return { bytes, durationMs };
}
