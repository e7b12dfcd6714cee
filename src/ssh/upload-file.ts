/**
 * Uploading one (large) file: parallel SFTP writes into a partial file (`<dest>.kiln-part`), sha256sum there
 * against the local sha256 (computed while the transfer runs), then a rename into place. When the
 * connection drops the session reconnects and the transfer resumes from the acknowledged prefix
 * (see sftp-put.ts). A checksum mismatch starts over once, then fails with INTEGRITY.
 *
 * With `sudo`, the destination may be in a directory the login user cannot even enter (kiln's
 * staging directory is root's, mode 0700), so the partial file lives in the login user's home
 * (`~/.kiln-upload/`, made by root for that user), is written there over SFTP, then handed to root
 * and moved into place.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { KilnError } from '../core/errors.js';
import { isDisconnected, SshDisconnectedError } from './connect.js';
import { sftpPut, type SftpPutState } from './sftp-put.js';
import { DEFAULT_UPLOAD_TIMEOUT_MS, type UploadHost, type UploadOptions } from './upload-host.js';
import { sha256File } from '../core/sha256.js';

export interface UploadFileOptions extends UploadOptions {
  /** chmod for the file once in place, e.g. "0755". */
  mode?: string;
  /** Attempts in all (reconnecting after a dropped connection); default 5. */
  maxAttempts?: number;
  /** Bytes acknowledged by the remote side so far, of the total. */
  onProgress?: (bytes: number, total: number) => void;
  /** SFTP write size and writes in flight (defaults 128 KiB x 32). */
  chunkSize?: number;
  concurrency?: number;
}

export interface UploadFileResult {
  bytes: number;
  sha256: string;
  attempts: number;
  /** The offset each attempt started from (0 for the first, > 0 for a resume). */
  startOffsets: number[];
  durationMs: number;
  /** Of durationMs: time spent in SFTP transfers, and in the remote check and rename. */
  transferMs: number;
  verifyMs: number;
}

// Both scripts: env KILN_DEST, KILN_PART (with sudo: relative to the login user's home), KILN_SUDO.
const PART_PATH = [
  'set -eu',
  'if [ "$KILN_SUDO" = 1 ]; then part="$(getent passwd "$SUDO_UID" | cut -d: -f6)/$KILN_PART"; else part=$KILN_PART; fi',
];

// env: KILN_FRESH (1 = start over). Prints the partial file's size.
const PREPARE = [
  ...PART_PATH,
  'mkdir -p -- "$(dirname -- "$KILN_DEST")"',
  'if [ "$KILN_SUDO" = 1 ]; then install -d -o "$SUDO_UID" -g "$SUDO_GID" -m 0700 -- "$(dirname -- "$part")"; fi',
  'if [ "$KILN_FRESH" = 1 ] || [ ! -f "$part" ]; then rm -f -- "$part"; : > "$part"; fi',
  'if [ "$KILN_SUDO" = 1 ]; then chown -- "$SUDO_UID:$SUDO_GID" "$part"; fi',
  'echo "size $(stat -c %s -- "$part")"',
].join('\n');

// env: KILN_SHA256, KILN_MODE (may be empty). Verifies, then moves into place.
const FINISH = [
  ...PART_PATH,
  // openssl uses the CPU's SHA instructions where coreutils may not: several times faster.
  'if command -v openssl >/dev/null 2>&1; then sum=$(openssl dgst -sha256 -r < "$part"); else sum=$(sha256sum < "$part"); fi',
  'echo "sha256 ${sum%% *}"',
  '[ "${sum%% *}" = "$KILN_SHA256" ] || exit 0',
  'if [ "$KILN_SUDO" = 1 ]; then chown 0:0 -- "$part"; fi',
  'if [ -n "$KILN_MODE" ]; then chmod -- "$KILN_MODE" "$part"; fi',
  'mv -f -- "$part" "$KILN_DEST"',
  'if [ "$KILN_SUDO" = 1 ]; then rmdir -- "$(dirname -- "$part")" 2>/dev/null || true; fi',
  'echo complete',
].join('\n');

/** Copies one file to `remotePath`, verifies its sha256 there, resumes after a dropped connection. */
export async function uploadFile(host: UploadHost, localPath: string, remotePath: string, options: UploadFileOptions = {}): Promise<UploadFileResult> {
  const info = await stat(localPath).catch(() => undefined);
  if (!info?.isFile()) throw new KilnError('INPUT', `cannot upload ${localPath}: not a file`, { path: localPath });
  if (options.mode !== undefined && !/^[0-7]{3,4}$/.test(options.mode)) throw new KilnError('INPUT', `bad file mode "${options.mode}"`);
  const started = Date.now();
  const size = info.size;
  const maxAttempts = options.maxAttempts ?? 5;
  const localSha = sha256File(localPath);
  localSha.catch(() => {}); // awaited below; do not let an early failure go unhandled
  const state: SftpPutState = { acked: 0 };
  const part = partPath(remotePath, options.sudo);
  const startOffsets: number[] = [];
  let fresh = true;
  let mismatches = 0;
  let transferMs = 0;
  let verifyMs = 0;
  host.log(`ssh: uploading ${localPath} (${size} bytes) to ${host.target}:${remotePath}`);
  for (let attempt = 1; ; attempt++) {
    try {
      const partSize = await step(host, PREPARE, 'size', remotePath, { KILN_PART: part, KILN_FRESH: fresh ? '1' : '0' }, options);
      const start = fresh ? 0 : Math.min(state.acked, Number(partSize));
      startOffsets.push(start);
      if (start > 0) host.log(`ssh: resuming ${remotePath} at byte ${start} of ${size}`);
      const transferStart = Date.now();
      try {
        await transfer(host, localPath, part, start, size, state, options);
      } finally {
        transferMs += Date.now() - transferStart;
      }
      const expected = await localSha;
      const verifyStart = Date.now();
      const remoteSha = await step(host, FINISH, 'sha256', remotePath, { KILN_PART: part, KILN_SHA256: expected, KILN_MODE: options.mode ?? '' }, options);
      verifyMs += Date.now() - verifyStart;
      if (remoteSha === expected) {
        const durationMs = Date.now() - started;
        host.log(
          `ssh: uploaded ${remotePath} in ${durationMs} ms (transfer ${transferMs} ms, check ${verifyMs} ms, ${attempt} attempt${attempt > 1 ? 's' : ''}), sha256 ${expected} verified`,
        );
        return { bytes: size, sha256: expected, attempts: attempt, startOffsets, durationMs, transferMs, verifyMs };
      }
      mismatches++;
      if (mismatches > 1 || attempt >= maxAttempts) {
        throw new KilnError('INTEGRITY', `${host.target}:${remotePath} has sha256 ${remoteSha} after upload, expected ${expected}`, { target: host.target, path: remotePath });
      }
      host.log(`ssh: sha256 of ${remotePath} did not match (${remoteSha}, expected ${expected}); starting over`);
      fresh = true;
    } catch (err) {
      if (!isDisconnected(err) || attempt >= maxAttempts) throw err;
      options.signal?.throwIfAborted();
      host.log(`ssh: upload of ${remotePath} interrupted at byte ${state.acked} (attempt ${attempt}/${maxAttempts}); reconnecting to resume`);
      await host.reconnect();
      fresh = false;
    }
  }
}

/**
 * Where the partial file is written over SFTP: next to the destination, or with sudo in the login
 * user's home (a relative SFTP path starts there), named after the destination so a resume finds it.
 */
function partPath(remotePath: string, sudo: boolean | undefined): string {
  if (!sudo) return `${remotePath}.kiln-part`;
  return `.kiln-upload/${createHash('sha256').update(remotePath).digest('hex').slice(0, 16)}.kiln-part`;
}

/** Runs a plumbing script and returns the value of its `<key> <value>` output line. */
async function step(host: UploadHost, script: string, key: string, remotePath: string, env: Record<string, string>, options: UploadFileOptions): Promise<string> {
  let value: string | undefined;
  const result = await host.exec(script, {
    env: { ...env, KILN_DEST: remotePath, KILN_SUDO: options.sudo ? '1' : '0' },
    sudo: options.sudo,
    timeoutMs: options.timeoutMs ?? DEFAULT_UPLOAD_TIMEOUT_MS,
    signal: options.signal,
    quiet: true,
    onLine: (stream, line) => {
      if (stream === 'stdout' && line.startsWith(`${key} `)) value = line.slice(key.length + 1);
    },
  });
  if (result.code !== 0 || value === undefined) {
    throw new KilnError('SSH', `uploading ${remotePath} to ${host.target} failed (exit ${result.code ?? result.signal}):\n${result.tail.join('\n')}`, {
      target: host.target,
      path: remotePath,
    });
  }
  return value;
}

/** One SFTP attempt with a deadline; a drop of the connection is reported as SshDisconnectedError. */
async function transfer(host: UploadHost, localPath: string, partPath: string, start: number, size: number, state: SftpPutState, options: UploadFileOptions): Promise<void> {
  const sftp = await host.sftp();
  const timeoutMs = options.timeoutMs ?? DEFAULT_UPLOAD_TIMEOUT_MS;
  const controller = new AbortController();
  const stop = (error: KilnError): void => {
    if (!controller.signal.aborted) controller.abort(error);
  };
  const timer = setTimeout(() => stop(new KilnError('TIMEOUT', `upload of ${partPath} to ${host.target} timed out after ${Math.round(timeoutMs / 1000)}s`, { target: host.target })), timeoutMs);
  const onAbort = (): void => stop(new KilnError('INTERRUPTED', `upload of ${partPath} to ${host.target} interrupted`, { target: host.target }));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const unsubscribe = host.onDisconnect(() => stop(new SshDisconnectedError(`connection to ${host.target} lost while uploading ${partPath} (at byte ${state.acked})`, { target: host.target })));
  try {
    await sftpPut(sftp, localPath, partPath, start, size, state, {
      chunkSize: options.chunkSize,
      concurrency: options.concurrency,
      onAcked: (bytes) => options.onProgress?.(bytes, size),
      signal: controller.signal,
    });
  } catch (err) {
    if (controller.signal.aborted) throw controller.signal.reason;
    if (!host.connected) throw new SshDisconnectedError(`connection to ${host.target} lost while uploading ${partPath}`, { target: host.target }, err);
    throw new KilnError('SSH', `SFTP upload of ${partPath} to ${host.target} failed: ${err instanceof Error ? err.message : String(err)}`, { target: host.target }, { cause: err });
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    unsubscribe();
    sftp.end();
  }
}


export { sha256File };
