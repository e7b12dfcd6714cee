/**
 * A whole release matrix against the fast fakes: the EC2, Compute Engine and ARM fakes (unmodified
 * SDKs over HTTP(S) on 127.0.0.1, NullMachines-style backends) with a delay on every state
 * transition and a share of requests throttled, one real sshd on loopback standing in for every
 * build VM, and the three drivers sharing one set of rate limiters, as `kiln build --target
 * aws,gcp,azure --size all` wires them. Nothing is provisioned (the plans' steps are dropped: they
 * must never run on this host); every build does real SSH with its own key.
 *
 * Used by test/integration/matrix/matrix.test.ts and bench/matrix.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDefinition } from '../../src/definition/load.js';
import type { Plan } from '../../src/definition/plan.js';
import type { TargetName } from '../../src/definition/schema.js';
import { buildMatrix } from '../../src/pipeline/matrix.js';
import { runBuilds, type RunResult } from '../../src/pipeline/run.js';
import { AwsDriver } from '../../src/targets/aws/driver.js';
import { AzureDriver } from '../../src/targets/azure/driver.js';
import { GcpDriver } from '../../src/targets/gcp/driver.js';
import { RateLimits, type ApiRateOverrides } from '../../src/targets/rate-limits.js';
import type { TargetDriver } from '../../src/targets/target.js';
import { ALL_REGIONS, fastRetries, REGION } from '../integration/aws/world.js';
import { PROJECT } from '../integration/gcp/world.js';
import { startArmFake, type ArmFake } from '../fakes/arm/index.js';
import { DEFAULT_VM_SIZES } from '../fakes/arm/providers/compute-common.js';
import { LoopbackAddresses, NullMachines, type MachineSpec } from '../fakes/common/machines.js';
import { startEc2Fake, type Ec2Fake } from '../fakes/ec2/index.js';
import { CREDENTIALS } from '../fakes/ec2/testkit.js';
import { startGceFake, type GceFake } from '../fakes/gce/index.js';
import { startSshd, type TestSshd } from './sshd.js';

export const MATRIX_TARGETS = ['aws', 'gcp', 'azure'] as const satisfies readonly TargetName[];

/** Latency of every state transition, in ms: small, but a build spends most of its time waiting on them. */
export const TRANSITION_DELAYS = {
  aws: { 'instance.running': 400, 'instance.stopped': 300, 'instance.terminated': 300, 'snapshot.completed': 200, 'image.available': 500 },
  gcp: {
    'operation.running': 50,
    'operation.done': 150,
    'disk.ready': 100,
    'disk.deleted': 100,
    'instance.staging': 150,
    'instance.running': 250,
    'instance.terminated': 250,
    'instance.deleted': 150,
    'image.ready': 500,
    'image.deleted': 100,
    'firewall.applied': 100,
    'firewall.deleted': 100,
  },
  azure: {
    'resourceGroup.delete': 200,
    'network.provision': 150,
    'network.delete': 100,
    'vm.create': 400,
    'vm.start': 150,
    'vm.powerOff': 200,
    'vm.deallocate': 300,
    'vm.delete': 200,
    'disk.delete': 100,
    'image.create': 400,
    'image.delete': 100,
    'gallery.create': 150,
    'galleryImage.create': 150,
    'galleryImageVersion.create': 300,
    'galleryImageVersion.replicate': 500,
  },
} as const;

/** A tenth of all requests answered with the cloud's throttling error (seeded, so reproducible). */
export const THROTTLE = { throttleRate: 0.1, seed: 20260109 };

/** Limits for the run: low enough that 15 builds' polling hits them, high enough to stay quick. */
export const TEST_API_RATES: ApiRateOverrides = { aws: { read: 60, write: 30 }, gcp: { read: 60, write: 30 }, azure: { read: 60, write: 30 } };

/** Every machine's address is the sshd's; booting a machine lets its key in (next to the others'). */
class SshdAddress extends LoopbackAddresses {
  override allocate(): string {
    return '127.0.0.1';
  }
  override release(): void {}
}

class SshdMachines extends NullMachines {
  constructor(
    private readonly sshd: TestSshd,
    /** Every booted machine's key, across the three fakes: authorize() replaces the sshd's list. */
    private readonly keys: Set<string>,
    /** EC2 consoles end lines with CRLF, GCE's serial port with LF. */
    private readonly newline: string,
  ) {
    super();
  }
  override async startMachine(spec: MachineSpec): Promise<void> {
    this.keys.add(spec.sshPublicKey);
    this.sshd.authorize([...this.keys]);
  }
  override async consoleOutput(id: string): Promise<string> {
    const key = this.sshd.hostPublicKey.split(' ').slice(0, 2).join(' ');
    return ['fake console of ' + id, '-----BEGIN SSH HOST KEY KEYS-----', `${key} root@${id}`, '-----END SSH HOST KEY KEYS-----', ''].join(this.newline);
  }
}

export interface MatrixWorld {
  sshd: TestSshd;
  ec2: Ec2Fake;
  gce: GceFake;
  arm: ArmFake;
  stateDir: string;
  rateLimits: RateLimits;
  drivers: Record<(typeof MATRIX_TARGETS)[number], TargetDriver>;
  /** aws,gcp,azure x every size of the flagship definition (version 5.2.0 unless given), nothing to provision. */
  plans(runId: string, version?: string): Promise<Plan[]>;
  /** Runs the plans as `kiln build` does: all at once, one ledger, one manifest. */
  run(plans: Plan[], options?: { manifestPath?: string; concurrency?: number }): Promise<RunResult>;
  close(): Promise<void>;
}

export async function startMatrixWorld(options: { rates?: ApiRateOverrides; throttle?: boolean } = {}): Promise<MatrixWorld> {
  const sshd = await startSshd();
  const faults = options.throttle === false ? {} : THROTTLE;
  const keys = new Set<string>();
  const ec2 = await startEc2Fake({ machines: new SshdMachines(sshd, keys, '\r\n'), loopback: new SshdAddress(), delays: TRANSITION_DELAYS.aws, faults, instanceNotFoundWindowMs: 100 });
  const gce = await startGceFake({ machines: new SshdMachines(sshd, keys, '\n'), addresses: new SshdAddress(), synthesizeHostKeys: false, delays: TRANSITION_DELAYS.gcp, faults });
  const arm = await startArmFake({
    machines: new SshdMachines(sshd, keys, '\n'),
    vmSizes: { ...DEFAULT_VM_SIZES, ...AZURE_SIZES },
    delays: TRANSITION_DELAYS.azure,
    faults,
    throttleRetryAfterSeconds: 0,
  });
  const stateDir = await mkdtemp(join(tmpdir(), 'kiln-matrix-'));
  const rateLimits = new RateLimits(options.rates ?? TEST_API_RATES);
  const builderAddress = async () => '127.0.0.1';

  const aws = new AwsDriver({
    clientConfig: { endpoint: ec2.url, credentials: CREDENTIALS, region: REGION, retryStrategy: fastRetries(16) },
    builderAddress,
    timing: { pollMs: 20, waiterMinDelay: 0.02, waiterMaxDelay: 0.2, consistencyMs: 2_000 },
    timeouts: { runningMs: 60_000, stopMs: 60_000, imageMs: 60_000, copyMs: 60_000, terminateMs: 60_000, dependencyMs: 60_000, hostKeysMs: 10_000 },
    sshEndpoint: { port: sshd.port },
    regions: ALL_REGIONS,
    rateLimits,
  });
  const gcp = new GcpDriver({
    clientOptions: gce.clientOptions({ projectId: PROJECT }),
    builderAddress,
    retry: { retries: 16, minTimeoutMs: 5, maxTimeoutMs: 100 },
    pollMs: 20,
    timeouts: { hostKeysMs: 10_000, operationMs: 60_000, imageMs: 60_000, stopMs: 60_000 },
    sshPort: sshd.port,
    rateLimits,
  });
  const { credential, options: armOptions, pollOptions } = arm.clientOptions();
  const azure = new AzureDriver({
    credential,
    clientOptions: { ...armOptions, retryOptions: { maxRetries: 12, retryDelayInMs: 5, maxRetryDelayInMs: 100 } },
    subscriptionId: arm.subscriptionId,
    pollIntervalMs: Math.max(pollOptions.updateIntervalInMs, 20),
    builderAddress,
    sshOverride: () => ({ host: sshd.host, port: sshd.port, username: sshd.user }),
    inUseTimeoutMs: 10_000,
    rateLimits,
  });
  const drivers = { aws, gcp, azure };
  const definition = await loadDefinition('images/sourcegraph.yaml');

  return {
    sshd,
    ec2,
    gce,
    arm,
    stateDir,
    rateLimits,
    drivers,
    plans: async (runId, version = '5.2.0') =>
      buildMatrix(definition, { targets: MATRIX_TARGETS.join(','), sizes: 'all', version }, { runId }).map((plan) => ({
        ...plan,
        provision: [],
        // The sshd logs in as the current user; Azure keeps the plan's admin user (it refuses root) and is sent to the sshd's.
        access: plan.target === 'azure' ? plan.access : { ...plan.access, sshUser: sshd.user },
      })),
    run: (plans, runOptions = {}) =>
      runBuilds({
        plans,
        driverFor: (plan) => drivers[plan.target as keyof typeof drivers],
        stateDir,
        onError: 'cleanup',
        signal: new AbortController().signal,
        concurrency: runOptions.concurrency ?? plans.length,
        manifestPath: runOptions.manifestPath,
        stepTimeoutsMs: { connect: 120_000 },
      }),
    async close() {
      aws.close();
      await gcp.close();
      await Promise.all([ec2.close(), gce.close(), arm.close()]);
      await sshd.dispose();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/** The flagship's Azure sizes the fake does not know by default. */
const AZURE_SIZES = {
  Standard_D8as_v5: { cpus: 8, memoryMiB: 32768 },
  Standard_D16as_v5: { cpus: 16, memoryMiB: 65536 },
  Standard_D32as_v5: { cpus: 32, memoryMiB: 131072 },
  Standard_D48as_v5: { cpus: 48, memoryMiB: 196608 },
  Standard_D96as_v5: { cpus: 96, memoryMiB: 393216 },
};
