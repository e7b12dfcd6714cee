/**
 * The kiln process the SIGKILL test kills: one build of the flagship definition (size XS, nothing to
 * provision) on the GCE or EC2 fake whose URL it is given, with on-error cleanup, printing a line per
 * progress event (`step <name> <status>`, `cleanup`, then `result <status>`) to stdout.
 *
 * With `freezeAt` set to one of those lines, the process prints it and then blocks its only thread
 * (Atomics.wait) inside the pipeline's synchronous progress callback: nothing more happens, so the
 * parent's SIGKILL lands exactly at that step boundary. Without it, the build runs on and the kill
 * lands wherever the build has got to (in flight).
 *
 * It loads only the SDK of its target (given as its argument), prints `ready`, and starts the build
 * when the JSON ChildConfig arrives as a line on stdin: the test starts the next child while the
 * current one builds, so loading an SDK through tsx (seconds on a small machine) overlaps.
 *
 *   node --import tsx test/integration/leaks/build-child.ts gcp|aws   (stdin: '<json ChildConfig>\n')
 */
import { createInterface } from 'node:readline';
import { loadDefinition } from '../../../src/definition/load.js';
import { resolve } from '../../../src/definition/resolve.js';
import { runBuild, type ProgressEvent } from '../../../src/pipeline/build.js';
import { Ledger } from '../../../src/pipeline/ledger.js';
import { runPaths } from '../../../src/pipeline/state-dir.js';
import type { TargetDriver } from '../../../src/targets/target.js';

export interface ChildConfig {
  target: 'gcp' | 'aws';
  /** The fake's http://127.0.0.1:<port> URL. */
  url: string;
  sshPort: number;
  sshUser: string;
  stateDir: string;
  runId: string;
  /** A progress line to print and then block at, waiting to be killed. */
  freezeAt?: string;
}

/** The drivers as the worlds of test/integration/{gcp,aws} make them (fast polls and retries). */
async function loadDriver(target: string): Promise<(c: ChildConfig) => TargetDriver> {
  if (target === 'gcp') {
    const [{ GcpDriver }, { gceClientOptions }, { PROJECT }] = await Promise.all([
      import('../../../src/targets/gcp/driver.js'),
      import('../../fakes/gce/client-options.js'),
      import('../gcp/world.js'),
    ]);
    return (c) =>
      new GcpDriver({
        clientOptions: gceClientOptions(c.url, { projectId: PROJECT }),
        builderAddress: async () => '127.0.0.1',
        retry: { retries: 12, minTimeoutMs: 1, maxTimeoutMs: 20 },
        pollMs: 2,
        timeouts: { hostKeysMs: 5_000, operationMs: 20_000, imageMs: 20_000, stopMs: 20_000 },
        sshPort: c.sshPort,
      });
  }
  const [{ AwsDriver }, { CREDENTIALS }, { ALL_REGIONS, fastRetries, REGION }] = await Promise.all([
    import('../../../src/targets/aws/driver.js'),
    import('../../fakes/ec2/testkit.js'),
    import('../aws/world.js'),
  ]);
  return (c) =>
    new AwsDriver({
      clientConfig: { endpoint: c.url, credentials: CREDENTIALS, region: REGION, retryStrategy: fastRetries() },
      builderAddress: async () => '127.0.0.1',
      timing: { pollMs: 5, waiterMinDelay: 0.01, waiterMaxDelay: 0.05, consistencyMs: 400 },
      timeouts: { runningMs: 20_000, stopMs: 20_000, imageMs: 20_000, copyMs: 20_000, terminateMs: 20_000, dependencyMs: 20_000, hostKeysMs: 3_000 },
      sshEndpoint: { port: c.sshPort },
      regions: ALL_REGIONS,
    });
}

/** The first line on stdin. */
async function firstLine(): Promise<string> {
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    lines.close();
    return line;
  }
  throw new Error('stdin closed before the config arrived');
}

function lineOf(event: ProgressEvent): string | undefined {
  if (event.type === 'step') return `step ${event.step} ${event.status}`;
  if (event.type === 'cleanup') return 'cleanup';
  return undefined;
}

const driverFor = await loadDriver(process.argv[2] ?? '');
const base = await loadDefinition('images/sourcegraph.yaml');
process.stdout.write('ready\n');
const config = JSON.parse(await firstLine()) as ChildConfig;

function say(line: string): void {
  // stdout is a pipe: on Linux the write is synchronous, so the line is out before a freeze.
  process.stdout.write(`${line}\n`);
  if (line === config.freezeAt) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
}

const resolved = resolve(base, config.target, 'xs', '5.2.0', { runId: config.runId });
// Nothing may run on this host; the sshd logs in as the current user.
const plan = { ...resolved, provision: [], access: { ...resolved.access, sshUser: config.sshUser } };
const paths = runPaths(plan.runId, config.stateDir);
const ledger = await Ledger.open(paths.ledger, plan.runId);
const result = await runBuild({
  plan,
  driver: driverFor(config),
  ledger,
  paths,
  onError: 'cleanup',
  signal: new AbortController().signal,
  stepTimeoutsMs: { connect: 20_000 },
  onProgress: (event) => {
    const line = lineOf(event);
    if (line) say(line);
  },
});
say(`result ${result.status}${result.error ? ` ${result.error.message}` : ''}`);
process.exit(0);
