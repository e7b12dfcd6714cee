/**
 * Progress of a run. On a terminal: listr2, one line per build showing its current step and last
 * output line. Elsewhere (CI, pipes): plain lines prefixed with the build id; provisioning output
 * only with --verbose (it is always in each build's log file).
 */
import { Listr, type ListrTaskWrapper } from 'listr2';
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

interface BuildTask {
  task?: ListrTaskWrapper<unknown, never, never>;
  step: string;
  finished: (result: BuildResult) => void;
  done: Promise<BuildResult>;
}

function listrProgress(buildIds: string[]): Progress {
  const tasks = new Map<string, BuildTask>();
  for (const id of buildIds) {
    let finished!: (result: BuildResult) => void;
    const done = new Promise<BuildResult>((resolve) => (finished = resolve));
    tasks.set(id, { step: 'waiting', finished, done });
  }
  const listr = new Listr(
    buildIds.map((id) => ({
      title: `${id}: waiting`,
      task: async (_ctx: unknown, task: ListrTaskWrapper<unknown, never, never>) => {
        const entry = tasks.get(id)!;
        entry.task = task;
        const result = await entry.done;
        task.title = `${id}: ${result.status}`;
        if (result.status !== 'succeeded') throw new Error(result.error?.message.split('\n')[0] ?? result.status);
      },
    })),
    { concurrent: true, exitOnError: false },
  );
  const running = listr.run().catch(() => undefined);
  return {
    event(event) {
      const entry = tasks.get(event.buildId);
      if (!entry?.task) return;
      if (event.type === 'step' && event.status === 'started') {
        entry.step = event.step;
        entry.task.title = `${event.buildId}: ${event.step}`;
      } else if (event.type === 'cleanup') {
        entry.task.title = `${event.buildId}: cleaning up`;
      } else if (event.type === 'output') {
        entry.task.output = event.line.slice(0, 160);
      }
    },
    buildDone(result) {
      tasks.get(result.buildId)?.finished(result);
    },
    finish: async () => {
      await running;
    },
  };
}
