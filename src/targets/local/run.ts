/**
 * Runs the local tools (qemu-img, debootstrap, mke2fs, ...) with execa: output streamed line by line
 * to an optional log callback, failures turned into LOCAL KilnErrors that quote the end of stderr.
 */
import { execa } from 'execa';
import { KilnError } from '../../core/errors.js';

export type LogFn = (line: string) => void;

export interface RunOptions {
  /** Receives every stdout/stderr line as it arrives. */
  onLog?: LogFn;
  input?: string | Buffer;
  cwd?: string;
  env?: Record<string, string>;
  signal?: AbortSignal;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

const STDERR_TAIL_CHARS = 2000;

export async function runTool(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const { onLog } = options;
  try {
    const result = await execa(file, args, {
      input: options.input,
      cwd: options.cwd,
      env: options.env,
      extendEnv: true,
      cancelSignal: options.signal,
      stripFinalNewline: false,
      ...(onLog ? { stdout: streamLines(onLog), stderr: streamLines(onLog) } : {}),
    });
    return { stdout: String(result.stdout), stderr: String(result.stderr) };
  } catch (err) {
    const e = err as { stderr?: unknown; exitCode?: number; signal?: string; shortMessage?: string };
    const stderr = typeof e.stderr === 'string' ? e.stderr.trim() : '';
    const tail = stderr.length > STDERR_TAIL_CHARS ? `...${stderr.slice(-STDERR_TAIL_CHARS)}` : stderr;
    const status = e.exitCode !== undefined ? `exit code ${e.exitCode}` : (e.signal ?? e.shortMessage ?? 'failed');
    throw new KilnError('LOCAL', `${file} failed (${status})${tail ? `: ${tail}` : ''}`, { tool: file, command: [file, ...args].join(' ') }, { cause: err });
  }
}

/** An execa line transform that forwards each line to the log and passes it on unchanged. */
function streamLines(onLog: LogFn) {
  return function* (line: unknown) {
    onLog(String(line));
    yield line;
  };
}
