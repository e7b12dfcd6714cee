/**
 * What the AWS driver tests run against: the wire-level EC2 fake (the unmodified SDK over HTTP on
 * 127.0.0.1) whose "machines" are a real sshd on loopback. Booting an instance authorizes its key
 * pair's public key in that sshd, every public IP is 127.0.0.1, and the driver's test-only
 * `sshEndpoint` port points at the sshd, so the pipeline's connect step does real SSH with the
 * driver's key and the host keys it read from the console (the sshd's, a wrong one, or none).
 */
import type { EC2ClientConfig } from '@aws-sdk/client-ec2';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KilnError } from '../../../src/core/errors.js';
import { loadDefinition } from '../../../src/definition/load.js';
import type { AwsTargetPlan, Plan } from '../../../src/definition/plan.js';
import { resolve } from '../../../src/definition/resolve.js';
import { runBuild, type BuildOptions, type BuildResult } from '../../../src/pipeline/build.js';
import { Ledger, type LedgerEntry } from '../../../src/pipeline/ledger.js';
import { runPaths, type RunPaths } from '../../../src/pipeline/state-dir.js';
import { generateKeyPair } from '../../../src/ssh/index.js';
import { AwsDriver, type AwsDriverOptions } from '../../../src/targets/aws/driver.js';
import { LoopbackAddresses, NullMachines, type MachineSpec } from '../../fakes/common/machines.js';
import { startEc2Fake, type Ec2Fake, type Ec2FakeOptions } from '../../fakes/ec2/index.js';
import { CREDENTIALS } from '../../fakes/ec2/testkit.js';
import { startSshd, type TestSshd } from '../../support/sshd.js';

export const REGION = 'us-west-2';
export const PUBLISH_REGIONS = ['us-east-1', 'us-east-2', 'us-west-1', 'eu-west-1', 'eu-central-1', 'ap-southeast-1'];
export const ALL_REGIONS = [REGION, ...PUBLISH_REGIONS];

/** Every instance's public address is the loopback sshd's. */
class SshdAddress extends LoopbackAddresses {
  override allocate(): string {
    return '127.0.0.1';
  }
  override release(): void {}
}

export type ConsoleHostKeys = 'sshd' | 'wrong' | 'none';

/** NullMachines whose boots authorize the instance's key in the sshd, and whose console shows host keys. */
export class SshdMachines extends NullMachines {
  consoleKeys: ConsoleHostKeys = 'sshd';
  readonly started: MachineSpec[] = [];
  /** Set to make the next machine start (launch) or disk snapshot (capture) fail in the backend. */
  failStart = false;
  failSnapshot = false;
  private readonly wrongKey = generateKeyPair('not-the-vm').publicKey;

  constructor(private readonly sshd: TestSshd) {
    super();
  }

  override async startMachine(spec: MachineSpec): Promise<void> {
    if (this.failStart) throw new Error('no capacity for this machine');
    this.started.push(spec);
    this.sshd.authorize([spec.sshPublicKey]);
  }

  override async snapshotDisk(diskId: string): Promise<void> {
    if (this.failSnapshot) throw new Error(`disk ${diskId} could not be read`);
  }

  override async consoleOutput(id: string): Promise<string> {
    const key = { sshd: this.sshd.hostPublicKey, wrong: this.wrongKey, none: undefined }[this.consoleKeys];
    const block = key ? `-----BEGIN SSH HOST KEY KEYS-----\r\n${key.split(' ').slice(0, 2).join(' ')} root@${id}\r\n-----END SSH HOST KEY KEYS-----\r\n` : '';
    return `[    0.000000] Linux version 6.1.0 (fake console of ${id})\r\n${block}login: \r\n`;
  }
}

/**
 * A RetryStrategyV2 retrying what the SDK classifies as throttling or transient (as its standard
 * mode does) after a millisecond or two instead of the SDK's half-second-and-up backoff.
 */
export function fastRetries(maxAttempts = 12): NonNullable<EC2ClientConfig['retryStrategy']> {
  const token = (count: number) => ({ getRetryCount: () => count, getRetryDelay: () => 1 + Math.floor(Math.random() * 3) });
  return {
    mode: 'standard',
    acquireInitialRetryToken: async () => token(0),
    refreshRetryTokenForRetry: async (previous, info) => {
      const next = previous.getRetryCount() + 1;
      if (next >= maxAttempts || (info.errorType !== 'THROTTLING' && info.errorType !== 'TRANSIENT')) throw new Error('no retry');
      return token(next);
    },
    recordSuccess: () => {},
  };
}

/**
 * How long a test driver looks again for what it does not find right after a create (EC2's eventual
 * consistency, counted from the ledger's intent) when the create call may reach the fake late: a
 * test that stops kiln inside a call serves the call only after the kill, seconds later on a busy
 * machine. (Real EC2 gets two minutes.)
 */
export const LATE_CALL_CONSISTENCY_MS = 10_000;

/**
 * The same window for a driver whose calls are answered as they arrive. It must outlast the time
 * from the ledger's intent to the fake serving the create call plus the fake's own invisibility
 * (`instanceNotFoundWindowMs`): with 400 ms, a loaded CI machine let undo give up on an instance the
 * fake had launched but not yet shown, and the instance, its volume and its group were left.
 */
export const CONSISTENCY_MS = 3_000;

/** A driver's options against the fake at `url`: fast retries, waiters and polls; SSH to the sshd's port. */
export function testDriverOptions(url: string, sshPort: number, consistencyMs = CONSISTENCY_MS): AwsDriverOptions {
  return {
    clientConfig: { endpoint: url, credentials: CREDENTIALS, region: REGION, retryStrategy: fastRetries() },
    builderAddress: async () => '127.0.0.1',
    timing: { pollMs: 5, waiterMinDelay: 0.01, waiterMaxDelay: 0.05, consistencyMs },
    timeouts: { runningMs: 20_000, stopMs: 20_000, imageMs: 20_000, copyMs: 20_000, terminateMs: 20_000, dependencyMs: 20_000, hostKeysMs: 3_000 },
    sshEndpoint: { port: sshPort },
    regions: ALL_REGIONS,
  };
}

export interface World {
  fake: Ec2Fake;
  sshd: TestSshd;
  machines: SshdMachines;
  stateDir: string;
  /** A plan (own run id) for the flagship definition on aws, size XS, nothing to provision. */
  plan(runId: string): Plan;
  /** A driver against the fake: fast retries, waiters and polls; `options` override. */
  driver(options?: Partial<AwsDriverOptions>): AwsDriver;
  build(plan: Plan, extra?: Partial<BuildOptions> & { driver?: AwsDriver }): Promise<{ result: BuildResult; ledger: Ledger; paths: RunPaths; driver: AwsDriver }>;
  close(): Promise<void>;
}

export async function startWorld(fakeOptions: Ec2FakeOptions = {}): Promise<World> {
  const sshd = await startSshd();
  const machines = new SshdMachines(sshd);
  const fake = await startEc2Fake({
    machines,
    loopback: new SshdAddress(),
    // Small but real transitions, and instances invisible for a moment after RunInstances.
    delays: { 'instance.running': 20, 'instance.stopped': 20, 'instance.terminated': 20, 'snapshot.completed': 10, 'image.available': 20 },
    instanceNotFoundWindowMs: 100,
    ...fakeOptions,
  });
  const stateDir = await mkdtemp(join(tmpdir(), 'kiln-aws-'));
  const base = await loadDefinition('images/sourcegraph.yaml');
  const drivers: AwsDriver[] = [];

  const driver = (options: Partial<AwsDriverOptions> = {}): AwsDriver => {
    const d = new AwsDriver({ ...testDriverOptions(fake.url, sshd.port), ...options });
    drivers.push(d);
    return d;
  };

  return {
    fake,
    sshd,
    machines,
    stateDir,
    plan: (runId) => {
      const plan = resolve(base, 'aws', 'xs', '5.2.0', { runId });
      // Nothing may run on this host; the sshd logs in as the current user.
      return { ...plan, provision: [], access: { ...plan.access, sshUser: sshd.user } };
    },
    driver,
    async build(plan, extra = {}) {
      const { driver: given, ...options } = extra;
      const d = given ?? driver();
      const paths = runPaths(plan.runId, stateDir);
      const ledger = await Ledger.open(paths.ledger, plan.runId);
      const result = await runBuild({ plan, driver: d, ledger, paths, onError: 'cleanup', signal: new AbortController().signal, stepTimeoutsMs: { connect: 20_000 }, ...options });
      return { result, ledger, paths, driver: d };
    },
    async close() {
      for (const d of drivers) d.close();
      await fake.close();
      await sshd.dispose();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

export const aws = (plan: Plan) => plan.targetPlan as AwsTargetPlan;

/** A driver whose provisioning fails (nothing may run on this host, so the failure is the driver's). */
export function failingProvision(driver: AwsDriver): AwsDriver {
  const failing = Object.create(driver) as AwsDriver;
  failing.runtimeEnv = async () => {
    throw new KilnError('PROVISION', 'provisioning step data-volume failed (exit 1)');
  };
  return failing;
}

/** The plan's tags plus Name, as a Map like the fake keeps them. */
export function tagsOf(plan: Plan, name: string): Map<string, string> {
  return new Map([...Object.entries(plan.tags), ['Name', name]]);
}

/** Successful calls in a region after `from`, consecutive repeats (polls) collapsed. */
export function callSequence(fake: Ec2Fake, region: string, from = 0): string[] {
  const out: string[] = [];
  for (const call of fake.calls.slice(from)) {
    if (call.region !== region || call.status !== 200) continue;
    if (out.at(-1) !== call.action) out.push(call.action);
  }
  return out;
}

/** Deletes what a successful build kept (AMIs and their snapshots, in every region). */
export async function deleteArtifacts(world: World, result: BuildResult): Promise<void> {
  const d = world.driver();
  for (const artifact of result.artifacts) {
    const entry: LedgerEntry = { seq: 0, build: result.buildId, target: 'aws', kind: 'image', name: artifact.name ?? '', id: artifact.id, region: artifact.region, role: 'artifact', createdAt: '' };
    await d.destroy(entry, { log: () => {}, signal: AbortSignal.timeout(30_000) });
  }
}
