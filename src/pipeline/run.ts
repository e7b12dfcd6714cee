/**
 * A run: many builds (targets x sizes) of one definition and version, with bounded concurrency, one
 * ledger and one manifest. One failing build does not stop the others unless failFast.
 */
import { hostname } from 'node:os';
import type { Plan } from '../definition/plan.js';
import type { TargetDriver } from '../targets/target.js';
import { runBuild, type BuildResult, type OnError, type ProgressEvent } from './build.js';
import { writeJsonDurably } from './durable-file.js';
import { Ledger } from './ledger.js';
import { manifestEntry, ManifestWriter, MANIFEST_VERSION, type ManifestBuild } from './manifest.js';
import { runPaths, type RunPaths } from './state-dir.js';

export interface RunOptions {
  plans: Plan[];
  driverFor: (plan: Plan) => TargetDriver;
  stateDir: string;
  onError: OnError;
  signal: AbortSignal;
  concurrency: number;
  failFast?: boolean;
  resume?: boolean;
  validate?: boolean;
  /** Extra copy of the manifest, e.g. ./kiln-manifest.json. */
  manifestPath?: string;
  onProgress?: (event: ProgressEvent) => void;
  onBuildDone?: (result: BuildResult) => void;
}

export interface RunResult {
  runId: string;
  paths: RunPaths;
  results: BuildResult[];
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
  for (const plan of options.plans) await manifest.update(pendingEntry(plan));

  const failFast = new AbortController();
  const signal = AbortSignal.any([options.signal, failFast.signal]);
  const results: BuildResult[] = [];
  const queue = [...options.plans];
  const worker = async () => {
    for (let plan = queue.shift(); plan; plan = queue.shift()) {
      if (signal.aborted) break;
      await manifest.update({ ...pendingEntry(plan), status: 'running' });
      const result = await runBuild({ plan, driver: options.driverFor(plan), ledger, paths, onError: options.onError, signal, resume: options.resume, validate: options.validate, onProgress: options.onProgress });
      results.push(result);
      await manifest.update(manifestEntry(result));
      options.onBuildDone?.(result);
      if (result.status === 'failed' && options.failFast) failFast.abort(new Error(`--fail-fast: ${result.buildId} failed`));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, options.plans.length)) }, worker));
  return { runId: first.runId, paths, results };
}

/** A run's state directory and ledger, with this process recorded as the run's live owner. */
export async function openRun(runId: string, stateDir: string): Promise<{ paths: RunPaths; ledger: Ledger; startedAt: string }> {
  const paths = runPaths(runId, stateDir);
  const ledger = await Ledger.open(paths.ledger, runId);
  const startedAt = new Date().toISOString();
  await writeJsonDurably(paths.owner, { pid: process.pid, host: hostname(), startedAt } satisfies RunOwner);
  return { paths, ledger, startedAt };
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
