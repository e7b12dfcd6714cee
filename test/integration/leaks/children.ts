/**
 * The kiln processes the leak tests stop (child.ts): started ahead of need, since loading a cloud
 * SDK through tsx takes seconds, and read line by line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ChildConfig, LeakTarget } from './child.js';

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
/** How long a child may take to print an expected line (it may be loading an SDK on a busy machine). */
const LINE_DEADLINE_MS = 150_000;

export type Mode = 'kill' | 'interrupt';

export interface Child {
  process: ChildProcess;
  /** Resolves with [exit code, signal] when the process has ended. */
  exited: Promise<[number | null, NodeJS.Signals | null]>;
  send(config: ChildConfig): void;
  /**
   * Resolves with the first line from now on (or already printed, if `seen` says so) that equals
   * `wanted` or matches it; rejects if the child ends first or the deadline passes.
   */
  until(wanted: string | RegExp): Promise<string>;
  /** Every line printed so far. */
  lines(): string[];
}

export function startChild(target: LeakTarget, mode: Mode): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, target, mode], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let err = '';
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const seen: string[] = [];
  const waiters: Array<() => void> = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  createInterface({ input: child.stdout! }).on('line', (line) => (seen.push(line), wake()));
  child.on('exit', wake);
  const matches = (line: string, wanted: string | RegExp) => (typeof wanted === 'string' ? line === wanted : wanted.test(line));
  return {
    process: child,
    exited,
    send: (config) => child.stdin?.write(`${JSON.stringify(config)}\n`),
    lines: () => [...seen],
    until: (wanted) =>
      new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "${String(wanted)}" from the ${target} child within ${LINE_DEADLINE_MS} ms; it printed ${JSON.stringify(seen)}; stderr:\n${err}`)), LINE_DEADLINE_MS);
        const check = () => {
          const found = seen.find((line) => matches(line, wanted));
          if (found !== undefined) return (clearTimeout(timer), resolve(found));
          if (child.exitCode !== null || child.signalCode !== null) {
            return (clearTimeout(timer), reject(new Error(`the ${target} child ended (${child.exitCode ?? child.signalCode}) before "${String(wanted)}"; it printed ${JSON.stringify(seen)}; stderr:\n${err}`)));
          }
          waiters.push(check);
        };
        check();
      }),
  };
}

/**
 * The children one target's cases use, in order: `kills` children used once each (SIGKILL), then
 * one used for every interrupt case. The next child starts loading as soon as the current one is
 * handed out, so that a case rarely waits for an SDK to load, and never more than one loads per target.
 */
export class ChildPool {
  private next: Child | undefined;
  private interrupter: Child | undefined;

  constructor(
    private readonly target: LeakTarget,
    private kills: number,
  ) {}

  /** Starts loading the first child now. */
  warm(): Child {
    this.next ??= this.start();
    return this.next;
  }

  take(mode: Mode): Child {
    if (mode === 'interrupt' && this.interrupter) return this.interrupter;
    const child = this.next ?? this.start();
    if (mode === 'kill') this.kills--;
    else this.interrupter = child;
    this.next = this.kills > 0 || !this.interrupter ? this.start() : undefined;
    return child;
  }

  stop(): void {
    for (const child of [this.next, this.interrupter]) child?.process.kill('SIGKILL');
  }

  private start(): Child {
    return startChild(this.target, this.kills > 0 ? 'kill' : 'interrupt');
  }
}
