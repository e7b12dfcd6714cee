/**
 * The kiln process the leak tests stop: builds of the flagship definition (size XS, nothing to
 * provision) on the GCE, EC2 or ARM fake it is given, or on the local target, with on-error
 * cleanup, printing a line per progress event, prefixed with the run id (`<run> step <name>
 * <status>`, `<run> cleanup`), and `<run> result <status> exit <code>` at the end.
 *
 *   node --import tsx test/integration/leaks/child.ts gcp|aws|azure|local kill|interrupt
 *
 * It loads only its target's SDK, prints `ready`, then builds once per JSON ChildConfig line on
 * stdin (the test starts the next child while the current one builds: loading an SDK through tsx
 * takes seconds on a small machine).
 *
 * local: QEMU runs for real with a stand-in guest (test/support/local-stand-in.ts): a blank base
 * image that never boots, and the test's loopback sshd answering SSH.
 *
 * kill: one build straight through the pipeline (runBuild). With `stopAt` set to one of the lines,
 * the process prints it and blocks its only thread (Atomics.wait) inside the pipeline's synchronous
 * progress callback, so the parent's SIGKILL lands exactly at that step boundary.
 *
 * interrupt: builds as `kiln build` runs them (runBuilds, the CLI's SIGINT/SIGTERM handler, its exit
 * code), one after the other. At `stopAt` the process raises SIGINT itself, synchronously through
 * the handler (`process.emit`, what Node does when the signal arrives), so the interrupt lands at
 * that boundary; a SIGINT from the parent (a kill inside a create call) arrives the ordinary way.
 * Each first interrupt prints `<run> interrupted`.
 */
import { createInterface } from 'node:readline';
import { onInterrupt } from '../../../src/cli/signals.js';
import { loadDefinition } from '../../../src/definition/load.js';
import type { Plan } from '../../../src/definition/plan.js';
import { resolve } from '../../../src/definition/resolve.js';
import { runBuild, type ProgressEvent } from '../../../src/pipeline/build.js';
import { Ledger } from '../../../src/pipeline/ledger.js';
import { runBuilds, runExitCode } from '../../../src/pipeline/run.js';
import { runPaths } from '../../../src/pipeline/state-dir.js';
import type { TargetDriver } from '../../../src/targets/target.js';
import { standInDriver, standInPlan, type StandInGuest } from '../../support/local-stand-in.js';

export type LeakTarget = 'gcp' | 'aws' | 'azure' | 'local';

export interface ChildConfig {
  /** The fake's URL (http://127.0.0.1:<port>, https for ARM); none for local. */
  url?: string;
  /** ARM only: the fake's certificate and subscription. */
  ca?: string;
  subscriptionId?: string;
  sshHost: string;
  sshPort: number;
  sshUser: string;
  stateDir: string;
  runId: string;
  /** Product version; Azure gallery versions are named by it, so each run has its own. */
  version: string;
  /** A progress line (without the run id) to stop at: frozen (kill) or interrupted (interrupt). */
  stopAt?: string;
  /** local only: the blank base image, where images go, and the key and host key of the sshd. */
  local?: { baseImage: string; outputDir: string; privateKey: string; hostKey: string };
}

function fakeUrl(c: ChildConfig): string {
  if (!c.url) throw new Error(`no fake URL for ${target}`);
  return c.url;
}

function standInGuest(c: ChildConfig): StandInGuest {
  if (!c.local) throw new Error('no local settings for the local target');
  const { baseImage, outputDir, privateKey, hostKey } = c.local;
  return { baseImage, outputDir, ssh: { host: c.sshHost, port: c.sshPort, user: c.sshUser, privateKey, hostKey } };
}

/** The drivers as the integration worlds make them (fast polls and retries), SSH to the test sshd. */
async function loadDriver(target: string): Promise<(c: ChildConfig) => TargetDriver> {
  if (target === 'gcp') {
    const [{ GcpDriver }, { testDriverOptions }] = await Promise.all([import('../../../src/targets/gcp/driver.js'), import('../gcp/world.js')]);
    return (c) => new GcpDriver(testDriverOptions(fakeUrl(c), c.sshPort));
  }
  if (target === 'aws') {
    const [{ AwsDriver }, { LATE_CALL_CONSISTENCY_MS, testDriverOptions }] = await Promise.all([import('../../../src/targets/aws/driver.js'), import('../aws/world.js')]);
    return (c) => new AwsDriver(testDriverOptions(fakeUrl(c), c.sshPort, LATE_CALL_CONSISTENCY_MS));
  }
  if (target === 'azure') {
    const [{ AzureDriver }, { armClientSetup }] = await Promise.all([import('../../../src/targets/azure/driver.js'), import('../../fakes/arm/client-options.js')]);
    return (c) => {
      const setup = armClientSetup({ url: fakeUrl(c), ca: c.ca ?? '', subscriptionId: c.subscriptionId ?? '' });
      return new AzureDriver({
        credential: setup.credential,
        clientOptions: setup.options,
        subscriptionId: setup.subscriptionId,
        pollIntervalMs: setup.pollOptions.updateIntervalInMs,
        builderAddress: async () => '127.0.0.1',
        sshOverride: () => ({ host: c.sshHost, port: c.sshPort, username: c.sshUser }),
        inUseTimeoutMs: 5_000,
      });
    };
  }
  if (target === 'local') return (c) => standInDriver(standInGuest(c));
  throw new Error(`unknown target ${target}`);
}

function lineOf(event: ProgressEvent): string | undefined {
  if (event.type === 'step') return `step ${event.step} ${event.status}`;
  if (event.type === 'cleanup') return 'cleanup';
  return undefined;
}

const [target = '', mode = ''] = process.argv.slice(2);
const driverFor = await loadDriver(target);
const base = await loadDefinition('images/sourcegraph.yaml');
process.stdout.write('ready\n');

function planOf(c: ChildConfig): Plan {
  const resolved = resolve(base, target as LeakTarget, 'xs', c.version, { runId: c.runId });
  // Nothing may run on this host. The sshd logs in as the current user; on Azure and local the VM
  // keeps the plan's user (ARM refuses root) and the driver's sshOverride logs in to the sshd instead.
  const sshUser = target === 'azure' || target === 'local' ? resolved.access.sshUser : c.sshUser;
  const plan = { ...resolved, provision: [], access: { ...resolved.access, sshUser } };
  return target === 'local' ? standInPlan(plan, standInGuest(c)) : plan;
}

/** Prints `<run> <line>` (stdout is a pipe: on Linux the write is synchronous, so it is out before a freeze). */
function say(c: ChildConfig, line: string): void {
  process.stdout.write(`${c.runId} ${line}\n`);
}

async function killable(c: ChildConfig): Promise<void> {
  const plan = planOf(c);
  const paths = runPaths(plan.runId, c.stateDir);
  const ledger = await Ledger.open(paths.ledger, plan.runId);
  const result = await runBuild({
    plan,
    driver: driverFor(c),
    ledger,
    paths,
    onError: 'cleanup',
    signal: new AbortController().signal,
    stepTimeoutsMs: { connect: 20_000 },
    onProgress: (event) => {
      const line = lineOf(event);
      if (!line) return;
      say(c, line);
      if (line === c.stopAt) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    },
  });
  say(c, `result ${result.status} exit ${result.status === 'succeeded' ? 0 : 1}`);
}

async function interruptible(c: ChildConfig): Promise<void> {
  const plan = planOf(c);
  const interrupt = onInterrupt({ first: () => say(c, 'interrupted'), second: () => say(c, 'interrupted again') });
  try {
    const run = await runBuilds({
      plans: [plan],
      driverFor: () => driverFor(c),
      stateDir: c.stateDir,
      onError: 'cleanup',
      signal: interrupt.signal,
      concurrency: 1,
      onProgress: (event) => {
        const line = lineOf(event);
        if (!line) return;
        say(c, line);
        if (line === c.stopAt) process.emit('SIGINT', 'SIGINT');
      },
    });
    const result = run.results[0];
    say(c, `result ${result?.status ?? 'none'} exit ${runExitCode(run, 1)}`);
  } finally {
    interrupt.dispose();
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  const config = JSON.parse(line) as ChildConfig;
  if (mode === 'kill') await killable(config);
  else await interruptible(config);
}
