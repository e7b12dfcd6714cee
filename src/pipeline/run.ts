/**
 * A run: many builds (targets x sizes) of one definition and version, with bounded concurrency, one
 * ledger and one manifest. One failing build does not stop the others unless failFast, which
 * interrupts the running builds (they undo what they made) and starts no more. Builds that never
 * started are reported as interrupted, so the results and the manifest always cover every plan.
 */
import { hostname } from 'node:os';
import { asKilnError, EXIT_BUILD_FAILED, EXIT_INTERRUPTED, KilnError } from '../core/errors.js';
import type { Plan } from '../definition/plan.js';
import type { TargetDriver } from '../targets/target.js';
import { runBuild, type BuildOptions, type BuildResult, type OnError, type ProgressEvent } from './build.js';
import { writeJsonDurably } from './durable-file.js';
import { Ledger } from './ledger.js';
import { manifestEntry, ManifestWriter, MANIFEST_VERSION, type ManifestBuild } from './manifest.js';
import { runPaths, type RunPaths } from './state-dir.js';

export interface RunOptions {
  plans: Plan[];
  driverFor: (plan: Plan) => TargetDriver;
  stateDir: string;
  onError: OnError;
  /** With on-error ask: what to do about a failed step. */
  ask?: BuildOptions['ask'];
  signal: AbortSignal;
  concurrency: number;
  failFast?: boolean;
  resume?: boolean;
  validate?: boolean;
  /** Extra copy of the manifest, e.g. ./kiln-manifest.json. */
  manifestPath?: string;
  /** Per-step deadlines for every build (tests shorten them). */
  stepTimeoutsMs?: Parameters<typeof runBuild>[0]['stepTimeoutsMs'];
  onProgress?: (event: ProgressEvent) => void;
  onBuildDone?: (result: BuildResult) => void;
}

export interface RunResult {
  runId: string;
  paths: RunPaths;
  /** One per plan, in the plans' order. */
  results: BuildResult[];
  startedAt: string;
  finishedAt: string;
  /** Wall time of the whole run. */
  durationMs: number;
}

/** Who owns a run: `kiln cleanup --sweep` leaves runs whose owner process is alive alone. */
export interface RunOwner {
  pid: number;
  host: string;
  startedAt: string;
}

export async function runBuilds(options: RunOptions): Promise<RunResult> {
  const first = options.plans[0];
  if (!first) throw new Error('a run needs at least one plan');
  const started = Date.now();
  const { paths, ledger, startedAt } = await openRun(first.runId, options.stateDir);
  const manifest = new ManifestWriter([paths.manifest, ...(options.manifestPath ? [options.manifestPath] : [])], {
    manifestVersion: MANIFEST_VERSION,
    runId: first.runId,
    definition: first.definition,
    version: first.version,
    startedAt,
    updatedAt: startedAt,
    builds: [],
  });
  await manifest.update(...options.plans.map(pendingEntry));

  const failFast = new AbortController();
  const signal = AbortSignal.any([options.signal, failFast.signal]);
  const results = new Map<string, BuildResult>();
  const finish = async (result: BuildResult) => {
    results.set(result.buildId, result);
    await manifest.update(manifestEntry(result));
    options.onBuildDone?.(result);
  };
  const queue = [...options.plans];
  const worker = async () => {
    for (let plan = queue.shift(); plan && !signal.aborted; plan = queue.shift()) {
      await manifest.update({ ...pendingEntry(plan), status: 'running', startedAt: new Date().toISOString() });
      const result = await buildOne(plan, options, { ledger, paths, signal });
      await finish(result);
      if (result.status === 'failed' && options.failFast && !failFast.signal.aborted) {
        failFast.abort(new KilnError('INTERRUPTED', `--fail-fast: ${result.buildId} failed`));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, options.plans.length)) }, worker));

  // Whatever the workers did not start (an interrupt, --fail-fast) is reported, never left pending.
  const why = failFast.signal.aborted ? (failFast.signal.reason as Error).message : 'the run was interrupted';
  for (const plan of options.plans) if (!results.has(plan.buildId)) await finish(notStarted(plan, why));
  const finished = Date.now();
  return {
    runId: first.runId,
    paths,
    results: options.plans.map((p) => results.get(p.buildId) as BuildResult),
    startedAt,
    finishedAt: new Date(finished).toISOString(),
    durationMs: finished - started,
  };
}

/** One build; a failure before its pipeline could even start (its state folder) is its result too. */
async function buildOne(plan: Plan, options: RunOptions, run: { ledger: Ledger; paths: RunPaths; signal: AbortSignal }): Promise<BuildResult> {
  try {
    return await runBuild({
      plan,
      driver: options.driverFor(plan),
      ledger: run.ledger,
      paths: run.paths,
      onError: options.onError,
      ask: options.ask,
      signal: run.signal,
      resume: options.resume,
      validate: options.validate,
      stepTimeoutsMs: options.stepTimeoutsMs,
      onProgress: options.onProgress,
    });
  } catch (err) {
    return { buildId: plan.buildId, plan, status: 'failed', error: asKilnError(err), artifacts: [], timingsMs: {}, leftovers: run.ledger.entries({ build: plan.buildId }) };
  }
}

/** A run's state directory and ledger, with this process recorded as the run's live owner. */
export async function openRun(runId: string, stateDir: string): Promise<{ paths: RunPaths; ledger: Ledger; startedAt: string }> {
  const paths = runPaths(runId, stateDir);
  const ledger = await Ledger.open(paths.ledger, runId);
  const startedAt = new Date().toISOString();
  await writeJsonDurably(paths.owner, { pid: process.pid, host: hostname(), startedAt } satisfies RunOwner);
  return { paths, ledger, startedAt };
}

function notStarted(plan: Plan, why: string): BuildResult {
  return {
    buildId: plan.buildId,
    plan,
    status: 'interrupted',
    error: new KilnError('INTERRUPTED', `not started: ${why}`),
    artifacts: [],
    timingsMs: {},
    leftovers: [],
  };
}

/** The exit code of a finished run: 0 when every planned build succeeded, 130 when interrupted, else 1. */
export function runExitCode(run: RunResult, planned: number): number {
  // A failure wins over the builds --fail-fast then stopped (reported as interrupted).
  if (run.results.some((r) => r.status === 'failed')) return EXIT_BUILD_FAILED;
  if (run.results.some((r) => r.status === 'interrupted')) return EXIT_INTERRUPTED;
  return run.results.length === planned && run.results.every((r) => r.status === 'succeeded') ? 0 : EXIT_BUILD_FAILED;
}

function pendingEntry(plan: Plan): ManifestBuild {
  return {
    buildId: plan.buildId,
    target: plan.target,
    size: plan.size,
    version: plan.version,
    status: 'pending',
    k3sVersion: plan.software.k3s.version,
    helmVersion: plan.software.helm.version,
    charts: plan.software.charts.map((c) => ({ release: c.release, chart: c.chart, version: c.version })),
    artifacts: [],
    timingsMs: {},
    leftovers: [],
  };
}
