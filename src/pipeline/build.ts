/**
 * One build: the plan's steps in order (prepare, launch, connect, provision, stop, capture,
 * publish), each under its own deadline, every created resource in the ledger. On success the
 * temporary resources are deleted and the artifacts released; on failure or interrupt everything is
 * undone in reverse order (unless on-error is abort, which keeps it all for debugging and says how
 * to get into the VM; or ask, which lets a person choose, or run the failed step again).
 */
import { resolve as resolvePath } from 'node:path';
import { formatDuration } from '../core/duration.js';
import { asKilnError, KilnError } from '../core/errors.js';
import type { PipelineStepName, Plan } from '../definition/plan.js';
import { runProvisioning } from '../provision/runner.js';
import { sshCommandLine, SshSession } from '../ssh/index.js';
import type { Artifact, SshAccess, TargetDriver } from '../targets/target.js';
import { BuildLog } from './build-log.js';
import { BuildState } from './build-state.js';
import { ResourceRecorder, type BuildContext } from './context.js';
import type { Ledger, LedgerEntry } from './ledger.js';
import type { RunPaths } from './state-dir.js';
import { undo } from './undo.js';
import { renderCheckTable } from '../validate/table.js';
import { validateImages } from '../validate/validate.js';
import type { CheckResult } from '../validate/run-checks.js';

export const STEP_ORDER: readonly PipelineStepName[] = ['prepare', 'launch', 'connect', 'provision', 'stop', 'capture', 'publish'];
/** With `validate`: the image must pass its checks before anything is published. */
export const VALIDATED_STEP_ORDER: readonly PipelineStepName[] = ['prepare', 'launch', 'connect', 'provision', 'stop', 'capture', 'validate', 'publish'];

export const DEFAULT_STEP_TIMEOUTS_MS: Record<PipelineStepName, number> = {
  prepare: 10 * 60_000,
  launch: 20 * 60_000,
  connect: 15 * 60_000,
  provision: 90 * 60_000,
  stop: 15 * 60_000,
  capture: 120 * 60_000,
  validate: 45 * 60_000,
  publish: 180 * 60_000,
};

/** What a failed build does: delete everything, keep everything, or ask (cleanup, abort or retry the step). */
export type OnError = 'cleanup' | 'abort' | 'ask';

/** What the person asked after a failed step chose. */
export type FailureChoice = 'cleanup' | 'abort' | 'retry';

export interface FailedStep {
  buildId: string;
  step: PipelineStepName;
  error: KilnError;
  /** Aborted by an interrupt: the question is moot then. */
  signal: AbortSignal;
}

export interface BuildOptions {
  plan: Plan;
  driver: TargetDriver;
  ledger: Ledger;
  paths: RunPaths;
  onError: OnError;
  /** With on-error ask: asks what to do about a failed step (the CLI asks on the terminal). */
  ask?: (failed: FailedStep) => Promise<FailureChoice>;
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
  /** Continue from the first step not completed (the VM must still exist). */
  resume?: boolean;
  /** Boot an instance from the captured image and run the plan's checks before publishing. */
  validate?: boolean;
  stepTimeoutsMs?: Partial<Record<PipelineStepName, number>>;
  onProgress?: (event: ProgressEvent) => void;
}

export type ProgressEvent =
  | { type: 'step'; buildId: string; step: PipelineStepName; status: 'started' | 'done' | 'skipped' }
  | { type: 'output'; buildId: string; line: string }
  | { type: 'cleanup'; buildId: string };

export interface BuildResult {
  buildId: string;
  plan: Plan;
  status: 'succeeded' | 'failed' | 'interrupted';
  error?: KilnError;
  failedStep?: PipelineStepName;
  artifacts: Artifact[];
  timingsMs: Partial<Record<PipelineStepName, number>>;
  /** Resources still in the ledger after the build (kept by on-error abort, or failed deletes). */
  leftovers: LedgerEntry[];
  sourceImage?: string;
  /** The checks of the validation instance (with `validate`). */
  validation?: CheckResult[];
  /** When the build started and ended (cleanup included), ISO 8601; absent for a build never started. */
  startedAt?: string;
  finishedAt?: string;
  /** With on-error abort, when the VM kept is running: how to get in. */
  sshCommand?: string;
}

export async function runBuild(options: BuildOptions): Promise<BuildResult> {
  const { plan, driver, ledger } = options;
  const buildPaths = options.paths.build(plan.buildId);
  const emit = options.onProgress ?? (() => {});
  const log = new BuildLog(buildPaths.log, (line) => emit({ type: 'output', buildId: plan.buildId, line }));
  const state = await BuildState.open(buildPaths.state, plan.buildId);
  const ctx: BuildContext = { plan, resources: new ResourceRecorder(ledger, plan), state, paths: buildPaths, log, signal: options.signal };
  const result: BuildResult = { buildId: plan.buildId, plan, status: 'succeeded', artifacts: [], timingsMs: {}, leftovers: [], startedAt: new Date().toISOString() };
  let session: SshSession | undefined;
  let current: PipelineStepName | undefined;
  /** How the VM was reached, once connect has asked the driver. */
  let access: SshAccess | undefined;
  /** The choice made about a failed step, with on-error ask. */
  let choice: FailureChoice | undefined;
  const open = (c: BuildContext) => openSession(c, driver, stepTimeout(options, 'connect'), (a) => (access = a));

  const steps: Record<PipelineStepName, (step: BuildContext) => Promise<Artifact[] | void>> = {
    prepare: (c) => driver.prepare(c),
    launch: (c) => driver.launch(c),
    connect: async (c) => {
      session?.close();
      session = await open(c);
    },
    provision: async (c) => {
      session ??= await open(c);
      await runProvisioning({ session, steps: plan.provision, runtimeEnv: await driver.runtimeEnv(c), log: log.line, signal: c.signal });
    },
    stop: async (c) => {
      session?.close();
      session = undefined;
      await driver.stop(c);
    },
    capture: (c) => driver.capture(c),
    validate: async (c) => {
      const report = await validateImages({ plan, driver, images: [...state.artifacts], ledger, paths: options.paths, log, signal: c.signal });
      result.validation = report.results;
      for (const line of renderCheckTable(report.results).split('\n')) log.line(`validate| ${line}`);
      if (!report.passed) {
        const failed = report.results.filter((r) => !r.passed).map((r) => r.name);
        throw new KilnError('VALIDATION', `the image failed ${failed.length} of ${report.results.length} checks: ${failed.join('; ')}`, { build: plan.buildId });
      }
    },
    publish: (c) => driver.publish(c, [...state.artifacts]),
  };
  /** The step abandoned at its deadline or by an interrupt, still settling. */
  let abandoned: Promise<unknown> | undefined;

  /** Runs a step; with on-error ask, a failure is put to the person, who may have it run again. */
  const attempt = async (step: PipelineStepName): Promise<Artifact[] | void> => {
    for (;;) {
      const before = Math.max(0, ...ledger.entries({ build: plan.buildId }).map((e) => e.seq));
      log.record(`step ${step}: started`);
      emit({ type: 'step', buildId: plan.buildId, step, status: 'started' });
      try {
        return await withDeadline((c) => steps[step](c), step, stepTimeout(options, step), ctx, (p) => (abandoned = p));
      } catch (err) {
        if (options.onError !== 'ask' || !options.ask || options.signal.aborted) throw err;
        if (abandoned) await settle(abandoned, ABANDONED_STEP_GRACE_MS, log.line);
        abandoned = undefined;
        const error = asKilnError(err);
        log.line(`build ${plan.buildId} failed in step ${step}: ${error.message}`);
        try {
          choice = await options.ask({ buildId: plan.buildId, step, error, signal: options.signal });
        } catch (askErr) {
          log.line(`on-error ask: no answer (${asKilnError(askErr).message}); cleaning up`);
          throw err;
        }
        if (choice !== 'retry') throw err;
        // What the failed attempt made goes first: a step run again makes it anew, under the same names.
        const made = await undo(ledger, () => driver, { build: plan.buildId, after: before, log: log.line });
        if (made.length > 0) throw err;
        log.line(`on-error ask: running step ${step} again`);
      }
    }
  };

  try {
    log.line(`build ${plan.buildId}: ${plan.definition.name} ${plan.version} size ${plan.size} on ${plan.target} (run ${plan.runId})`);
    for (const step of options.validate ? VALIDATED_STEP_ORDER : STEP_ORDER) {
      // A resumed build reconnects even when connect completed before: the old session is gone.
      const skip = options.resume && state.completed.includes(step) && !(step === 'connect' && !state.completed.includes('provision'));
      if (skip) {
        log.record(`step ${step}: done before, skipped`);
        emit({ type: 'step', buildId: plan.buildId, step, status: 'skipped' });
        continue;
      }
      current = step;
      const started = Date.now();
      const produced = await attempt(step);
      result.timingsMs[step] = Date.now() - started;
      await state.complete(step, produced ?? []);
      log.record(`step ${step}: done in ${formatDuration(result.timingsMs[step])}`);
      emit({ type: 'step', buildId: plan.buildId, step, status: 'done' });
    }
    current = undefined;
    // An interrupt after the last step still undoes the build: its images have not been released yet.
    options.signal.throwIfAborted();
    result.artifacts = [...state.artifacts];
    result.sourceImage = state.fact('sourceImage');
    emit({ type: 'cleanup', buildId: plan.buildId });
    // Success: artifacts leave the ledger (they are the product), temporaries are deleted.
    for (const entry of ledger.entries({ build: plan.buildId, role: 'artifact' })) await ledger.remove(entry.seq);
    result.leftovers = await undo(ledger, () => driver, { build: plan.buildId, log: log.line });
  } catch (err) {
    session?.close();
    const error = options.signal.aborted ? new KilnError('INTERRUPTED', `build interrupted ${current ? `during ${current}` : 'before it finished'}`, { step: current }) : asKilnError(err);
    result.status = options.signal.aborted ? 'interrupted' : 'failed';
    result.error = error;
    result.failedStep = current;
    result.sourceImage = state.fact('sourceImage');
    log.line(`build ${plan.buildId} ${result.status} in step ${current ?? '?'}: ${error.message}`);
    if (abandoned) await settle(abandoned, ABANDONED_STEP_GRACE_MS, log.line);
    // Ask mode without an answer (interrupted while asking) cleans up.
    if ((choice ?? options.onError) !== 'abort') {
      emit({ type: 'cleanup', buildId: plan.buildId });
      result.leftovers = await undo(ledger, () => driver, { build: plan.buildId, log: log.line });
    } else {
      result.leftovers = ledger.entries({ build: plan.buildId });
      driver.keepAfterExit?.(ctx);
      const vmUp = state.completed.includes('launch') && !state.completed.includes('stop');
      if (access && vmUp) result.sshCommand = sshCommandLine(access, resolvePath(buildPaths.sshKey));
      if (result.sshCommand) log.line(`on-error abort: get in with: ${result.sshCommand}`);
      log.line(`on-error abort: kept ${result.leftovers.length} resource(s); delete them with: kiln cleanup --run ${plan.runId}`);
    }
  } finally {
    session?.close();
    result.finishedAt = new Date().toISOString();
    log.record(`build ${plan.buildId}: ${result.status}`);
    await log.close();
  }
  return result;
}

async function openSession(ctx: BuildContext, driver: TargetDriver, timeoutMs: number, found: (access: SshAccess) => void): Promise<SshSession> {
  const access = await driver.sshAccess(ctx);
  ctx.log.addSecret(access.privateKey);
  found(access);
  return SshSession.connect({
    host: access.host,
    port: access.port,
    username: access.username,
    privateKey: access.privateKey,
    hostKeys: access.hostKeys,
    timeoutMs,
    signal: ctx.signal,
    onLog: ctx.log.line,
  });
}

function stepTimeout(options: BuildOptions, step: PipelineStepName): number {
  return options.stepTimeoutsMs?.[step] ?? DEFAULT_STEP_TIMEOUTS_MS[step];
}

/** How long undo waits for an abandoned step to notice its aborted signal and record what it made. */
const ABANDONED_STEP_GRACE_MS = 2 * 60_000;

/**
 * Runs a step under the build's signal combined with the step's deadline, in a context of its own
 * carrying that signal. The race makes sure a step that ignores its signal cannot hang the build;
 * the abandoned promise is handed to `onAbandon` so undo can wait for what it may still create.
 */
async function withDeadline<T>(
  run: (step: BuildContext) => Promise<T>,
  step: PipelineStepName,
  timeoutMs: number,
  ctx: BuildContext,
  onAbandon: (running: Promise<unknown>) => void,
): Promise<T> {
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = AbortSignal.any([ctx.signal, deadline]);
  signal.throwIfAborted();
  const running = run({ ...ctx, signal });
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      onAbandon(running);
      reject(deadline.aborted ? new KilnError('TIMEOUT', `step ${step} did not finish within ${formatDuration(timeoutMs)}`, { step }) : signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    running.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

async function settle(running: Promise<unknown>, graceMs: number, log: (line: string) => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
  const outcome = await Promise.race([running.then(() => 'settled', () => 'settled'), late]);
  clearTimeout(timer);
  if (outcome === 'late') log(`the abandoned step did not stop within ${formatDuration(graceMs)}; cleaning up what the ledger lists`);
}
