/**
 * Running one command over an exec channel: optional `sudo -n`, environment passed as data (see
 * shell.ts), output streamed line by line, a deadline after which the remote process group is
 * killed, and the last lines kept for error messages.
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { ClientChannel } from 'ssh2';
import { KilnError } from '../core/errors.js';
import { SshDisconnectedError, type Connection } from './connect.js';
import { LineSplitter, Tail, redactor } from './lines.js';
import { describeEnv, envBlock, killCommand, secretValues, wrapCommand, type EnvValue } from './shell.js';

export type OutputStream = 'stdout' | 'stderr';

export interface ExecOptions {
  /** Run as root through `sudo -n` (fails at once instead of prompting for a password). */
  sudo?: boolean;
  /** Passed as data, never as shell source; values made with secret() are never logged. */
  env?: Record<string, EnvValue>;
  /** Working directory on the remote machine. */
  cwd?: string;
  /** Deadline for the command; default the session's (10 minutes). */
  timeoutMs?: number;
  /** Each output line as it arrives (secret values replaced by ***). Default: the session log. */
  onLine?: (stream: OutputStream, line: string) => void;
  signal?: AbortSignal;
  /** Data for the command's stdin; default none (stdin is at EOF). */
  stdin?: Readable | Buffer | string;
  /** Do not log the command line (for kiln's own plumbing commands). */
  quiet?: boolean;
}

export interface ExecResult {
  /** Exit code, or null when the command was ended by a signal. */
  code: number | null;
  signal: string | null;
  /** Last 20 lines of each stream, joined with \n, secrets redacted. */
  stdoutTail: string;
  stderrTail: string;
  /** Last 20 lines of both streams in arrival order, stderr lines prefixed with `! `. */
  tail: string[];
  durationMs: number;
}

export const DEFAULT_EXEC_TIMEOUT_MS = 10 * 60_000;
const KILL_TIMEOUT_MS = 15_000;

/** Runs `command` on `conn` and resolves when it ends, whatever its exit code. */
export async function exec(conn: Connection, command: string, options: ExecOptions, log: (line: string) => void): Promise<ExecResult> {
  const id = randomBytes(8).toString('hex');
  const remote = wrapCommand({ command, sudo: options.sudo, cwd: options.cwd, id });
  const block = envBlock(options.env);
  const redact = redactor(secretValues(options.env));
  const timeoutMs = options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  const shown = summarize(redact(command));
  if (!options.quiet) {
    const env = describeEnv(options.env);
    log(`ssh: ${conn.target} $ ${options.sudo ? 'sudo ' : ''}${env ? `${env} ` : ''}${redact(command)}`);
  }
  if (options.signal?.aborted) throw new KilnError('INTERRUPTED', `not running "${shown}" on ${conn.target}: interrupted`, context0(conn.target, shown));
  if (conn.closed) throw new SshDisconnectedError(`not connected to ${conn.target}`, { target: conn.target });

  const started = Date.now();
  const stdoutTail = new Tail();
  const stderrTail = new Tail();
  const tail = new Tail();
  const emit = (stream: OutputStream, raw: string): void => {
    const line = redact(raw);
    (stream === 'stdout' ? stdoutTail : stderrTail).push(line);
    tail.push(stream === 'stdout' ? line : `! ${line}`);
    if (options.onLine) options.onLine(stream, line);
    else log(`  ${stream === 'stdout' ? '|' : '!'} ${line}`);
  };
  const out = new LineSplitter((line) => emit('stdout', line));
  const err = new LineSplitter((line) => emit('stderr', line));
  const context = { target: conn.target, command: shown };
  const tailText = (): string => (tail.toArray().length ? `\n${tail.toArray().join('\n')}` : '');

  return new Promise<ExecResult>((resolve, reject) => {
    let settled = false;
    let channel: ClientChannel | undefined;
    let exitCode: number | null = null;
    let exitSignal: string | null = null;
    let sawExit = false;
    let unsubscribe: () => void = () => {};

    const cleanup = (): void => {
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      unsubscribe();
    };
    const fail = (error: Error): void => {
      if (settled) return;
      cleanup();
      reject(error);
    };
    const stop = (error: KilnError): void => {
      if (settled) return;
      cleanup();
      // Kill the remote process group from a second channel, then drop ours; report either way.
      void runRaw(conn, killCommand(id, options.sudo), KILL_TIMEOUT_MS)
        .catch((killError: unknown) => log(`ssh: could not kill "${shown}" on ${conn.target}: ${String(killError)}`))
        .finally(() => {
          channel?.close();
          reject(error);
        });
    };

    const timer = setTimeout(
      () => stop(new KilnError('TIMEOUT', `command timed out after ${Math.round(timeoutMs / 1000)}s on ${conn.target} and was killed: ${shown}${tailText()}`, { ...context, timeoutMs })),
      timeoutMs,
    );
    const onAbort = (): void => stop(new KilnError('INTERRUPTED', `command interrupted on ${conn.target} and killed: ${shown}`, context));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    unsubscribe = conn.onClose((reason) =>
      fail(new SshDisconnectedError(`connection to ${conn.target} lost while running: ${shown}${reason ? ` (${reason.message})` : ''}${tailText()}`, context, reason)),
    );

    const onOpen = (openError: Error | undefined, ch: ClientChannel): void => {
      if (openError) {
        const error = conn.closed
          ? new SshDisconnectedError(`connection to ${conn.target} lost before running: ${shown}`, context, openError)
          : new KilnError('SSH', `could not start a command on ${conn.target}: ${openError.message}`, context, { cause: openError });
        fail(error);
        return;
      }
      channel = ch;
      if (settled) {
        ch.close();
        return;
      }
      ch.on('data', (chunk: Buffer) => out.push(chunk));
      ch.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      ch.on('error', (channelError: Error) => log(`ssh: channel error on ${conn.target}: ${channelError.message}`));
      ch.on('exit', (code: number | null, signal?: string) => {
        sawExit = true;
        exitCode = code ?? null;
        exitSignal = signal ?? null;
      });
      ch.on('close', () => {
        out.end();
        err.end();
        if (settled) return;
        if (!sawExit) {
          fail(
            conn.closed
              ? new SshDisconnectedError(`connection to ${conn.target} lost while running: ${shown}${tailText()}`, context)
              : new KilnError('SSH', `the channel closed without an exit status on ${conn.target}: ${shown}${tailText()}`, context),
          );
          return;
        }
        cleanup();
        resolve({
          code: exitCode,
          signal: exitSignal,
          stdoutTail: stdoutTail.toString(),
          stderrTail: stderrTail.toString(),
          tail: tail.toArray(),
          durationMs: Date.now() - started,
        });
      });
      feedStdin(ch, block, options.stdin, (stdinError) =>
        fail(new KilnError('SSH', `feeding stdin of "${shown}" on ${conn.target} failed: ${stdinError.message}`, context, { cause: stdinError })),
      );
    };
    try {
      conn.client.exec(remote, onOpen);
    } catch (error) {
      // ssh2 throws at once when the transport is already gone.
      fail(new SshDisconnectedError(`connection to ${conn.target} lost before running: ${shown}`, context, error));
    }
  });
}

function feedStdin(ch: ClientChannel, block: Buffer, stdin: ExecOptions['stdin'], onError: (err: Error) => void): void {
  ch.write(block);
  if (stdin === undefined) {
    ch.end();
  } else if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) {
    ch.end(stdin);
  } else {
    stdin.once('error', onError);
    stdin.pipe(ch);
  }
}

/** A bare exec with a deadline, for kiln's own plumbing (no loader, no output handling). */
export async function runRaw(conn: Connection, command: string, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new KilnError('TIMEOUT', `plumbing command timed out on ${conn.target}`)), timeoutMs);
    const onOpen = (openError: Error | undefined, ch: ClientChannel): void => {
      if (openError) {
        clearTimeout(timer);
        reject(openError);
        return;
      }
      let code: number | null = null;
      ch.on('exit', (c: number | null) => (code = c ?? null));
      ch.on('data', () => {});
      ch.stderr.on('data', () => {});
      ch.on('close', () => {
        clearTimeout(timer);
        resolve(code);
      });
      ch.end();
    };
    try {
      conn.client.exec(command, onOpen);
    } catch (error) {
      clearTimeout(timer);
      reject(error instanceof Error ? error : new Error(String(error)));
    }
  });
}

function context0(target: string, command: string): Record<string, string> {
  return { target, command };
}

/** First line of a command, shortened, for messages. */
export function summarize(command: string): string {
  const lines = command.trim().split('\n');
  const first = lines[0] ?? '';
  const short = first.length > 160 ? `${first.slice(0, 157)}...` : first;
  return lines.length > 1 ? `${short} ...` : short;
}
