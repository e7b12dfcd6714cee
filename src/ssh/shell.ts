/**
 * How a command reaches the remote shell without any value ever being spliced into shell source.
 *
 * The remote command line is fixed text plus single-quoted argv: a loader script, the caller's
 * command, the working directory and a random id. Environment values travel on the channel's stdin
 * as a NUL-separated block (`NAME=value\0...\0\0`) that the loader reads with `read -r -d ''` and
 * exports with `export -- "$kv"`: a value is data from end to end, never parsed by a shell, so
 * `5.0.0; rm -rf /` or `$(reboot)` arrives verbatim and runs nothing. With sudo the loader runs
 * under `sudo -n`, so the values are set after sudo's env_reset and never show on a command line.
 * Bash reads a pipe one byte at a time, so whatever follows the block on stdin (a tar stream, a
 * file) reaches the command intact.
 *
 * The loader records its process group in /tmp/.kiln-exec-<id> so that a command past its deadline
 * can be killed, with everything it started, from a second channel.
 */
import { KilnError } from '../core/errors.js';

/** An environment value that must never appear in logs or error messages. */
export interface SecretValue {
  value: string;
  secret: true;
}

export type EnvValue = string | SecretValue;

/** Marks an environment value as secret. */
export function secret(value: string): SecretValue {
  return { value, secret: true };
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** POSIX single-quote quoting: the result is one word whose value is `s`, whatever `s` holds. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The NUL-separated environment block the loader reads from stdin, ended by an empty entry. */
export function envBlock(env: Record<string, EnvValue> = {}): Buffer {
  const parts: string[] = [];
  for (const [name, raw] of Object.entries(env)) {
    const value = typeof raw === 'string' ? raw : raw.value;
    if (!ENV_NAME.test(name)) throw new KilnError('INPUT', `invalid environment variable name "${name}"`, { variable: name });
    if (value.includes('\0')) throw new KilnError('INPUT', `environment variable ${name} contains a NUL byte`, { variable: name });
    parts.push(`${name}=${value}\0`);
  }
  parts.push('\0');
  return Buffer.from(parts.join(''), 'utf8');
}

export function secretValues(env: Record<string, EnvValue> = {}): string[] {
  return Object.values(env).flatMap((v) => (typeof v === 'string' ? [] : [v.value]));
}

/** `NAME=value` pairs for a log line, secrets shown as `***`. */
export function describeEnv(env: Record<string, EnvValue> = {}): string {
  return Object.entries(env)
    .map(([name, v]) => `${name}=${typeof v === 'string' ? shellQuote(v) : '***'}`)
    .join(' ');
}

// $1: command (shell source), $2: working directory or '', $3: exec id (hex).
const LOADER = [
  `while IFS= read -r -d '' kv && [ -n "$kv" ]; do export -- "$kv" || exit 125; done`,
  'pf=/tmp/.kiln-exec-$3',
  '{ st=$(< "/proc/$$/stat") && st=${st##*) } && read -r _ _ pg _ <<< "$st" && [ "$pg" -gt 1 ] && printf \'%s\\n\' "$pg" > "$pf"; } 2>/dev/null',
  'if [ -n "$2" ]; then cd -- "$2" || { rm -f -- "$pf"; exit 125; }; fi',
  'bash --norc --noprofile -c "$1"',
  'rc=$?',
  'rm -f -- "$pf"',
  'exit "$rc"',
].join('\n');

const KILLER = [
  'pf=/tmp/.kiln-exec-$1',
  'pg=$(cat -- "$pf" 2>/dev/null) || exit 0',
  'rm -f -- "$pf"',
  '[ "$pg" -gt 1 ] 2>/dev/null && kill -KILL -- "-$pg"',
  'exit 0',
].join('\n');

export interface WrapOptions {
  command: string;
  sudo?: boolean;
  cwd?: string;
  /** Random hex id of this execution, names its process-group file. */
  id: string;
}

/** The command line sent over the exec channel. Contains no environment value. */
export function wrapCommand({ command, sudo, cwd, id }: WrapOptions): string {
  assertId(id);
  const prefix = sudo ? 'exec sudo -n -- bash --norc --noprofile -c ' : 'exec bash --norc --noprofile -c ';
  return `${prefix}${shellQuote(LOADER)} kiln-exec ${shellQuote(command)} ${shellQuote(cwd ?? '')} ${id}`;
}

/** The command line that kills the process group of execution `id` (a no-op if it has ended). */
export function killCommand(id: string, sudo?: boolean): string {
  assertId(id);
  const prefix = sudo ? 'exec sudo -n -- bash --norc --noprofile -c ' : 'exec bash --norc --noprofile -c ';
  return `${prefix}${shellQuote(KILLER)} kiln-kill ${id}`;
}

function assertId(id: string): void {
  if (!/^[0-9a-f]{8,64}$/.test(id)) throw new KilnError('INTERNAL', `bad exec id "${id}"`);
}
