/**
 * kiln's command line for the release tests. In-process: the commands exactly as src/cli/main.ts
 * registers them (its register calls are read from its source, so a new command is picked up),
 * with output captured; starting the real CLI costs seconds per process on a loaded machine. And
 * `kiln()` for the one test that runs the real binary.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { execa } from 'execa';
import type { Output } from '../../../src/cli/output.js';

export async function kiln(...args: string[]) {
  return execa('node', ['bin/kiln.js', ...args], { reject: false, env: { CI: 'true' }, timeout: 120_000 });
}

type Register = (program: Command, out: Output) => void;

let registrations: Promise<Register[]> | undefined;

/**
 * The register functions main.ts calls, in its order. Loading them loads every cloud SDK (seconds on
 * a busy machine): call this from beforeAll with a generous timeout.
 */
export function registerFunctions(): Promise<Register[]> {
  registrations ??= (async () => {
    const source = readFileSync('src/cli/main.ts', 'utf8');
    const modules = new Map([...source.matchAll(/import \{ (register\w+) \} from '\.\/([\w-]+)\.js';/g)].map((m) => [m[1]!, m[2]!]));
    const calls = [...source.matchAll(/^\s*(register\w+)\(program, out\);/gm)].map((m) => m[1]!);
    if (calls.length < 5) throw new Error(`found ${calls.length} register calls in src/cli/main.ts: has its shape changed?`);
    return Promise.all(
      calls.map(async (name) => {
        const url = pathToFileURL(resolve('src/cli', `${modules.get(name) ?? 'missing'}.ts`)).href;
        const module = (await import(/* @vite-ignore */ url)) as Record<string, Register>;
        const fn = module[name];
        if (!fn) throw new Error(`src/cli/main.ts calls ${name}, not found`);
        return fn;
      }),
    );
  })();
  return registrations;
}

export interface InProcessResult {
  stdout: string;
  stderr: string;
  /** What the command threw (commander's help and exits included). */
  error?: unknown;
}

/** Runs `kiln <args>` in this process, as main.ts would parse it. */
export async function kilnInProcess(...args: string[]): Promise<InProcessResult> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const out: Output = { interactive: false, line: (t = '') => stdout.push(`${t}\n`), error: (t) => stderr.push(`${t}\n`), bold: (t) => t, dim: (t) => t };
  const program = new Command('kiln')
    .option('--debug', 'print stack traces on errors')
    .exitOverride()
    .configureOutput({ writeOut: (t) => stdout.push(t), writeErr: (t) => stderr.push(t) });
  for (const register of await registerFunctions()) register(program, out);
  let error: unknown;
  try {
    await program.parseAsync(['node', 'kiln', ...args]);
  } catch (err) {
    error = err;
  }
  return { stdout: stdout.join(''), stderr: stderr.join(''), error };
}

/** `kiln <path> --help`: the help text, or undefined if commander did not show that command's help. */
export async function helpOf(path: string[]): Promise<string | undefined> {
  const result = await kilnInProcess(...path, '--help');
  const shown = result.error instanceof CommanderError && result.error.code === 'commander.helpDisplayed';
  return shown && result.stdout.includes(`Usage: kiln ${path.join(' ')} `) ? result.stdout : undefined;
}
