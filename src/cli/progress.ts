/**
 * Progress of a run. On a terminal: listr2, one line per build showing its current step and last
 * output line (the time it took once done). Elsewhere (CI, pipes): plain lines prefixed with the
 * build id; provisioning output only with --verbose (it is always in each build's log file).
 */
import { Listr, PRESET_TIMER, type ListrDefaultRenderer, type ListrSimpleRenderer, type ListrTaskWrapper } from 'listr2';
import type { ProgressEvent } from '../pipeline/build.js';
import type { BuildResult } from '../pipeline/build.js';
import type { Output } from './output.js';

export interface Progress {
  event(event: ProgressEvent): void;
  buildDone(result: BuildResult): void;
  /** Resolves when the view has drawn its last frame. */
  finish(): Promise<void>;
}

export function createProgress(buildIds: string[], out: Output, verbose: boolean): Progress {
  return out.interactive ? listrProgress(buildIds) : plainProgress(out, verbose);
}

function plainProgress(out: Output, verbose: boolean): Progress {
  return {
    event(event) {
      if (event.type === 'step' && event.status !== 'done') out.line(`[${event.buildId}] ${event.step}${event.status === 'skipped' ? ' (done before, skipped)' : ''}`);
      else if (event.type === 'cleanup') out.line(`[${event.buildId}] cleaning up`);
      else if (event.type === 'output' && verbose) out.line(`[${event.buildId}]   ${event.line}`);
    },
    buildDone(result) {
      out.line(`[${result.buildId}] ${result.status}${result.error ? `: ${result.error.message.split('\n')[0]}` : ''}`);
    },
    finish: async () => {},
  };
}

type Task = ListrTaskWrapper<unknown, ListrDefaultRenderer, ListrSimpleRenderer>;

interface BuildTask {
  task?: Task;
  step: string;
  /** The build's last output line, shown after its step. */
  last?: string;
  finished: (result: BuildResult) => void;
  done: Promise<BuildResult>;
}

/** One line per build, however many run: `<build>  <step>  <last output line>`, cut to the terminal's width. */
function listrProgress(buildIds: string[]): Progress {
  const tasks = new Map<string, BuildTask>();
  for (const id of buildIds) {
    let finished!: (result: BuildResult) => void;
    const done = new Promise<BuildResult>((resolve) => (finished = resolve));
    tasks.set(id, { step: 'waiting', finished, done });
  }
  const width = Math.max(...buildIds.map((id) => id.length));
  const show = (id: string, entry: BuildTask) => {
    if (entry.task) entry.task.title = `${id.padEnd(width)}  ${entry.step.padEnd(11)}${entry.last ? `  ${entry.last}` : ''}`;
  };
  const listr = new Listr(
    buildIds.map((id) => ({
      title: `${id.padEnd(width)}  waiting`,
      rendererOptions: { outputBar: false },
      task: async (_ctx: unknown, task: Task) => {
        const entry = tasks.get(id)!;
        entry.task = task;
        show(id, entry);
        const result = await entry.done;
        task.title = `${id.padEnd(width)}  ${result.status}`;
        if (result.status !== 'succeeded') throw new Error(`${id.padEnd(width)}  ${result.status}: ${result.error?.message.split('\n')[0] ?? ''}`);
      },
    })),
    { concurrent: true, exitOnError: false, rendererOptions: { formatOutput: 'truncate', collapseErrors: true, timer: PRESET_TIMER } },
  );
  const running = listr.run().catch(() => undefined);
  return {
    event(event) {
      const entry = tasks.get(event.buildId);
      if (!entry) return;
      if (event.type === 'step' && event.status === 'started') {
        entry.step = event.step;
        entry.last = undefined;
      } else if (event.type === 'cleanup') {
        entry.step = 'cleaning up';
        entry.last = undefined;
      } else if (event.type === 'output') {
        entry.last = event.line.trim().slice(0, 200);
      } else {
        return;
      }
      show(event.buildId, entry);
    },
    buildDone(result) {
      tasks.get(result.buildId)?.finished(result);
    },
    finish: async () => {
      await running;
    },
  };
}
