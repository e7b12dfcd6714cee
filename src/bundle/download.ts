/**
 * Downloading one release file over HTTP(S) to a local file. Transport errors, 5xx, 408, 429 and a
 * body that is cut short or stalls are retried with backoff until the deadline; the next attempt
 * resumes from the bytes already on disk with a Range request when the server honours it (206 with
 * the matching Content-Range), and otherwise starts over from byte 0. Other 4xx answers fail at
 * once. The file is written as `<dest>.part` and renamed to `dest` only when complete; checking its
 * content against a checksum is the caller's job.
 */
import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { KilnError } from '../core/errors.js';
import { delay } from '../core/wait.js';

export interface DownloadOptions {
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Deadline for the whole download, retries included; default 30 minutes. */
  timeoutMs?: number;
  /** An attempt with no byte arriving for this long is abandoned (and resumed); default 60 s. */
  stallMs?: number;
  /** First delay between attempts, doubling up to 30 s; default 1 s. */
  retryDelayMs?: number;
}

export interface DownloadResult {
  bytes: number;
  attempts: number;
  /** Byte offsets later attempts resumed from (empty when the first attempt finished). */
  resumedFrom: number[];
}

/** An answer no retry will change (404, 403...). */
class PermanentError extends Error {}

export async function download(url: string, dest: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const part = `${dest}.part`;
  await rm(part, { force: true });
  const deadline = Date.now() + (options.timeoutMs ?? 30 * 60_000);
  let delayMs = options.retryDelayMs ?? 1000;
  const resumedFrom: number[] = [];
  for (let attempt = 1; ; attempt++) {
    try {
      const have = await sizeOf(part);
      if (have > 0) resumedFrom.push(have);
      await attemptDownload(url, part, have, options);
      const bytes = await sizeOf(part);
      await rename(part, dest);
      return { bytes, attempts: attempt, resumedFrom };
    } catch (err) {
      const reason = describe(err);
      if (options.signal?.aborted) {
        await rm(part, { force: true });
        throw new KilnError('INTERRUPTED', `download of ${url} interrupted`, { url });
      }
      if (err instanceof PermanentError || Date.now() + delayMs > deadline) {
        await rm(part, { force: true });
        const tries = err instanceof PermanentError ? '' : ` after ${attempt} attempts`;
        throw new KilnError('DOWNLOAD', `download of ${url} failed${tries}: ${reason}`, { url });
      }
      options.log?.(`download of ${url} failed (${reason}); retrying in ${Math.round(delayMs / 100) / 10}s`);
      await delay(delayMs, options.signal);
      delayMs = Math.min(delayMs * 2, 30_000);
    }
  }
}

async function attemptDownload(url: string, part: string, have: number, options: DownloadOptions): Promise<void> {
  const stallMs = options.stallMs ?? 60_000;
  const stall = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stall.signal]) : stall.signal;
  let timer: NodeJS.Timeout | undefined;
  const rearm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => stall.abort(new Error(`no data for ${stallMs / 1000}s`)), stallMs);
  };
  rearm();
  try {
    const response = await get(url, have > 0 ? { Range: `bytes=${have}-` } : {}, signal);
    const status = response.statusCode ?? 0;
    const resumes = status === 206 && have > 0 && rangeStart(response.headers['content-range']) === have;
    if (!resumes && status !== 200) {
      response.resume();
      if (status === 206 || status === 416) {
        // A range we did not ask for, or one past the end: start over.
        await rm(part, { force: true });
        throw new Error(`HTTP ${status} to a resume at byte ${have}`);
      }
      const retryable = status >= 500 || status === 408 || status === 429;
      throw retryable ? new Error(`HTTP ${status}`) : new PermanentError(`HTTP ${status}`);
    }
    const length = response.headers['content-length'];
    const expected = length === undefined ? undefined : Number(length);
    let written = 0;
    // A 200 (the whole file, also the answer of a server that ignores ranges) replaces what we had.
    // Whatever arrived before a failure is still written out, for the next attempt to resume from.
    const out = createWriteStream(part, { flags: resumes ? 'a' : 'w' });
    try {
      for await (const chunk of response as AsyncIterable<Buffer>) {
        written += chunk.length;
        rearm();
        if (!out.write(chunk)) await once(out, 'drain');
      }
    } finally {
      out.end();
      await finished(out);
    }
    if (expected !== undefined && written !== expected) throw new Error(`the body ended after ${written} of ${expected} bytes`);
  } catch (err) {
    if (stall.signal.aborted && !options.signal?.aborted) throw stall.signal.reason as Error;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * GET with redirects followed (release sites redirect to their storage). node:http rather than
 * fetch: its response is a Node stream that hands over every byte received before a connection
 * drops, where a fetch body discards what it had queued, and a resume depends on those bytes.
 */
function get(url: string, headers: Record<string, string>, signal: AbortSignal, redirects = 0): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const parsed = new URL(url);
    const client = parsed.protocol === 'https:' ? https : parsed.protocol === 'http:' ? http : undefined;
    if (!client) return reject(new PermanentError(`not an http(s) URL: ${url}`));
    const request = client.get(parsed, { headers, signal }, (response) => {
      const location = response.headers.location;
      if ([301, 302, 303, 307, 308].includes(response.statusCode ?? 0) && location) {
        response.resume();
        if (redirects >= 10) return reject(new PermanentError(`more than 10 redirects from ${url}`));
        get(new URL(location, url).toString(), headers, signal, redirects + 1).then(resolve, reject);
        return;
      }
      resolve(response);
    });
    request.once('error', reject);
  });
}

/** The first byte of a `bytes <first>-<last>/<total>` Content-Range. */
function rangeStart(header: string | undefined): number | undefined {
  const match = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(header ?? '');
  return match ? Number(match[1]) : undefined;
}

async function sizeOf(file: string): Promise<number> {
  return (await stat(file).catch(() => undefined))?.size ?? 0;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? err.cause.message : undefined;
  return cause && cause !== err.message ? `${err.message}: ${cause}` : err.message;
}
