/**
 * Waiting, the only way kiln waits: poll a condition with exponential backoff until it holds or a
 * deadline passes. There are no fixed sleeps anywhere else; `delay` exists only as the backoff
 * between two polls and is abortable.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KilnError } from './errors.js';

export interface WaitOptions {
  /** What we wait for, for the timeout message: "instance i-123 to be running". */
  what: string;
  /** Give up after this many milliseconds. */
  timeoutMs: number;
  /** First delay between polls; doubles up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  signal?: AbortSignal;
  /** Called after each failed poll with the last observation, for progress output. */
  onPoll?: (attempt: number, observation: unknown) => void;
}

/** Result of one poll: done with a value, or not yet (with what was seen, for the error message). */
export type Poll<T> = { done: true; value: T } | { done: false; seen?: unknown };

export const done = <T>(value: T): Poll<T> => ({ done: true, value });
export const notYet = (seen?: unknown): Poll<never> => ({ done: false, seen });

/**
 * Polls `check` until it reports done, backing off between polls, and throws a TIMEOUT KilnError
 * naming `what` and the last observation when the deadline passes. Errors thrown by `check` end the
 * wait at once: a check that can fail transiently must catch and return notYet itself.
 */
export async function waitFor<T>(check: () => Promise<Poll<T>>, options: WaitOptions): Promise<T> {
  const start = Date.now();
  const deadline = start + options.timeoutMs;
  let delayMs = options.initialDelayMs ?? 250;
  const maxDelayMs = options.maxDelayMs ?? 10_000;
  let lastSeen: unknown;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    const result = await check();
    if (result.done) return result.value;
    lastSeen = result.seen;
    options.onPoll?.(attempt, lastSeen);
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      const seen = lastSeen === undefined ? '' : ` (last seen: ${describe(lastSeen)})`;
      throw new KilnError('TIMEOUT', `timed out after ${Math.round((Date.now() - start) / 1000)}s waiting for ${options.what}${seen}`, {
        waitingFor: options.what,
      });
    }
    await delay(Math.min(delayMs, remaining), options.signal);
    delayMs = Math.min(delayMs * 2, maxDelayMs);
  }
}

/** Abortable pause, used only as backoff between two attempts. */
export async function delay(ms: number, signal?: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal });
}

function describe(value: unknown): string {
  if (value instanceof Error) return value.message;
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}
