/**
 * Validation: launch an instance from captured images as a customer would, wait for the boot unit,
 * run the plan's checks and delete the instance. Its resources are recorded under a build id of their
 * own (`<build id>-check`), so undo deletes exactly them, and a crash leaves them in the run's ledger
 * for `kiln cleanup --run`.
 */
import { KilnError } from '../core/errors.js';
import type { Plan } from '../definition/plan.js';
import type { BuildLog } from '../pipeline/build-log.js';
import { BuildState } from '../pipeline/build-state.js';
import { ResourceRecorder, type BuildContext } from '../pipeline/context.js';
import type { Ledger, LedgerEntry } from '../pipeline/ledger.js';
import type { RunPaths } from '../pipeline/state-dir.js';
import { undo } from '../pipeline/undo.js';
import { generateKeyPair, SshSession } from '../ssh/index.js';
import type { Artifact, TargetDriver } from '../targets/target.js';
import { VALIDATION_KEY_ENV } from './checks.js';
import { runChecks, type CheckResult } from './run-checks.js';

export interface ValidateOptions {
  plan: Plan;
  driver: TargetDriver;
  /** The captured images (a build's artifacts, or those a manifest lists). */
  images: Artifact[];
  /** Attach this data disk instead of the image's own (it is kept, and shut down cleanly). */
  dataDisk?: string;
  ledger: Ledger;
  paths: RunPaths;
  log: BuildLog;
  signal: AbortSignal;
  connectTimeoutMs?: number;
  bootTimeoutMs?: number;
}

export interface ValidationReport {
  passed: boolean;
  results: CheckResult[];
  /** Resources of the validation instance that could not be deleted. */
  leftovers: LedgerEntry[];
}

export const VALIDATION_SUFFIX = '-check';

export async function validateImages(options: ValidateOptions): Promise<ValidationReport> {
  const { driver, log } = options;
  if (!driver.launchInstance) throw new KilnError('VALIDATION', `validation is not supported on the ${driver.name} target yet`);
  const plan: Plan = { ...options.plan, buildId: `${options.plan.buildId}${VALIDATION_SUFFIX}` };
  const paths = options.paths.build(plan.buildId);
  const state = await BuildState.open(paths.state, plan.buildId);
  const ctx: BuildContext = { plan, resources: new ResourceRecorder(options.ledger, plan), state, paths, log, signal: options.signal };
  const key = generateKeyPair(`kiln-validate-${plan.buildId}`);
  log.addSecret(key.privateKey);
  let session: SshSession | undefined;
  let results: CheckResult[] = [];
  let leftovers: LedgerEntry[] = [];
  try {
    log.line(`validate: launching an instance from the ${plan.target} image${options.dataDisk ? ` with data disk ${options.dataDisk}` : ''}`);
    const access = await driver.launchInstance(ctx, options.images, { publicKey: key.publicKey, privateKey: key.privateKey, dataDisk: options.dataDisk });
    session = await SshSession.connect({ ...access, timeoutMs: options.connectTimeoutMs ?? 15 * 60_000, signal: options.signal, onLog: log.line });
    results = await runChecks(session, plan.checks, {
      runtimeEnv: { [VALIDATION_KEY_ENV]: key.publicKey.trim().split(/\s+/)[1] ?? '' },
      bootTimeoutMs: options.bootTimeoutMs ?? 30 * 60_000,
      signal: options.signal,
      log: log.line,
    });
    // A data disk that outlives the instance gets a clean shutdown, not a power cut.
    if (options.dataDisk) await session.exec('sync', { sudo: true, quiet: true, signal: options.signal });
    session.close();
    session = undefined;
    if (options.dataDisk) await driver.stop(ctx);
  } finally {
    session?.close();
    leftovers = await undo(options.ledger, () => driver, { build: plan.buildId, log: log.line });
    if (leftovers.length > 0) log.line(`validate: ${leftovers.length} resource(s) of the validation instance are left; run kiln cleanup --run ${plan.runId}`);
  }
  return { passed: results.length > 0 && results.every((r) => r.passed), results, leftovers };
}
