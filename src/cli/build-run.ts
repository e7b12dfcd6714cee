/**
 * What `kiln build` does once it has its plans and drivers: run them with progress on the terminal,
 * SIGINT/SIGTERM handling, questions for `--on-error ask`, then the summary and the exit code.
 */
import type { Plan } from '../definition/plan.js';
import type { OnError } from '../pipeline/build.js';
import { runBuilds, runExitCode } from '../pipeline/run.js';
import { stateDir } from '../pipeline/state-dir.js';
import type { TargetDriver } from '../targets/target.js';
import { terminalAsk } from './ask.js';
import type { Output } from './output.js';
import { createProgress } from './progress.js';
import { onInterrupt } from './signals.js';
import { printSummary } from './summary.js';

export interface RunRequest {
  plans: Plan[];
  driverFor: (plan: Plan) => TargetDriver;
  onError: OnError;
  concurrency: number;
  failFast?: boolean;
  resume?: boolean;
  validate?: boolean;
  /** Where the manifest goes (besides the run's directory). */
  manifest: string;
  verbose: boolean;
}

/** Runs the builds and reports them; returns the exit code. */
export async function runAndReport(request: RunRequest, out: Output): Promise<number> {
  const { plans, onError } = request;
  const runId = plans[0]?.runId ?? '';
  // Asking needs plain lines: a redrawn progress view would draw over the question.
  const progress = createProgress(plans.map((p) => p.buildId), onError === 'ask' ? { ...out, interactive: false } : out, request.verbose);
  const interrupt = onInterrupt({
    first: () => out.error('interrupted: undoing what the builds created (Ctrl-C again to stop waiting)'),
    second: () => out.error(`stopped waiting; anything left is in the ledger: run  kiln cleanup --run ${runId}`),
  });
  try {
    const run = await runBuilds({
      plans,
      driverFor: request.driverFor,
      stateDir: stateDir(),
      onError,
      ...(onError === 'ask' ? { ask: terminalAsk(out) } : {}),
      signal: interrupt.signal,
      concurrency: request.concurrency,
      failFast: request.failFast,
      resume: request.resume,
      validate: request.validate,
      manifestPath: request.manifest,
      onProgress: (e) => progress.event(e),
      onBuildDone: (r) => progress.buildDone(r),
    });
    await progress.finish();
    printSummary(run, request.manifest, out);
    return runExitCode(run, plans.length);
  } finally {
    interrupt.dispose();
  }
}
