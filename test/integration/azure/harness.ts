/**
 * Test harness for the Azure driver: the ARM fake (NullMachines, so nothing boots) whose "VM start"
 * authorizes the VM's SSH key on a real sshd on 127.0.0.1, which stands in for the VM's port 22; a
 * sourcegraph XS plan without provisioning steps (nothing may run on this host); and a build through
 * the real pipeline with the driver pointed at the fake by its constructor options.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDefinition, type LoadedDefinition } from '../../../src/definition/load.js';
import type { AzureTargetPlan, Plan } from '../../../src/definition/plan.js';
import { resolve } from '../../../src/definition/resolve.js';
import { runBuild, type BuildOptions, type BuildResult } from '../../../src/pipeline/build.js';
import { Ledger } from '../../../src/pipeline/ledger.js';
import { runPaths, type RunPaths } from '../../../src/pipeline/state-dir.js';
import { AzureDriver, type AzureDriverOptions } from '../../../src/targets/azure/driver.js';
import { NullMachines, type MachineSpec } from '../../fakes/common/machines.js';
import { startArmFake, type ArmFake, type ArmFakeOptions } from '../../fakes/arm/index.js';
import { DEFAULT_VM_SIZES } from '../../fakes/arm/providers/compute-common.js';
import type { TestSshd } from '../../support/sshd.js';

/** "Booting" a VM = letting its key in on the test sshd. */
class SshdMachines extends NullMachines {
  readonly started: MachineSpec[] = [];
  /** Set to make the next VM fail to boot (after its disks were made). */
  failStart: string | undefined;
  constructor(private readonly sshd: TestSshd) {
    super();
  }
  override async startMachine(spec: MachineSpec): Promise<void> {
    if (this.failStart) throw new Error(this.failStart);
    this.started.push(spec);
    this.sshd.authorize([spec.sshPublicKey]);
  }
}

export interface Harness {
  fake: ArmFake;
  sshd: TestSshd;
  machines: SshdMachines;
  stateDir: string;
  /** Addresses the driver found for SSH before the override sent it to the sshd. */
  sshTargets: string[];
  driverOptions(extra?: Partial<AzureDriverOptions>): AzureDriverOptions;
  close(): Promise<void>;
}

let loaded: LoadedDefinition | undefined;

export async function sourcegraphPlan(runId: string, change?: (t: AzureTargetPlan, plan: Plan) => void): Promise<Plan> {
  loaded ??= await loadDefinition('images/sourcegraph.yaml');
  // No provisioning scripts: they must never run on this host.
  const plan: Plan = { ...resolve(loaded, 'azure', 'xs', '5.2.0', { runId }), provision: [] };
  plan.targetPlan = structuredClone(plan.targetPlan);
  change?.(plan.targetPlan as AzureTargetPlan, plan);
  return plan;
}

export async function startHarness(sshd: TestSshd, fakeOptions: ArmFakeOptions = {}): Promise<Harness> {
  const machines = new SshdMachines(sshd);
  const fake = await startArmFake({ machines, vmSizes: { ...DEFAULT_VM_SIZES, Standard_D8as_v5: { cpus: 8, memoryMiB: 32768 } }, ...fakeOptions });
  const stateDir = await mkdtemp(join(tmpdir(), 'kiln-azure-'));
  const sshTargets: string[] = [];
  return {
    fake,
    sshd,
    machines,
    stateDir,
    sshTargets,
    driverOptions: (extra = {}) => {
      const { credential, options, pollOptions } = fake.clientOptions();
      return {
        credential,
        clientOptions: options,
        subscriptionId: fake.subscriptionId,
        pollIntervalMs: pollOptions.updateIntervalInMs,
        builderAddress: async () => '127.0.0.1',
        sshOverride: (found) => {
          sshTargets.push(`${found.username}@${found.host}:${found.port}`);
          return { host: sshd.host, port: sshd.port, username: sshd.user };
        },
        inUseTimeoutMs: 5_000,
        ...extra,
      };
    },
    close: async () => {
      await fake.close();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

export interface BuildRun {
  result: BuildResult;
  ledger: Ledger;
  paths: RunPaths;
  driver: AzureDriver;
}

export interface BuildExtra {
  driver?: Partial<AzureDriverOptions>;
  build?: Partial<BuildOptions> | ((ledger: Ledger) => Partial<BuildOptions>);
  make?: (options: AzureDriverOptions) => AzureDriver;
}

export async function build(h: Harness, plan: Plan, extra: BuildExtra = {}): Promise<BuildRun> {
  const options = h.driverOptions(extra.driver);
  const driver = extra.make?.(options) ?? new AzureDriver(options);
  const paths = runPaths(plan.runId, h.stateDir);
  const ledger = await Ledger.open(paths.ledger, plan.runId);
  const result = await runBuild({
    plan,
    driver,
    ledger,
    paths,
    onError: 'cleanup',
    signal: new AbortController().signal,
    stepTimeoutsMs: { connect: 20_000 },
    ...(typeof extra.build === 'function' ? extra.build(ledger) : extra.build),
  });
  return { result, ledger, paths, driver };
}

/** Request operations that change something (no reads, no polls), in order. */
export function writes(fake: ArmFake, since = 0): string[] {
  return fake.requests.slice(since).filter((r) => r.method !== 'GET' && r.method !== 'HEAD' && r.status < 400).map((r) => r.operation);
}

/** Every live resource id in the fake, lower-cased, grouped by type. */
export function live(fake: ArmFake): Record<string, string[]> {
  return fake.inventory().resources;
}

export const GALLERY_TYPES = ['Microsoft.Compute/galleries', 'Microsoft.Compute/galleries/images'];

/** Records the body of every request to the named operations (the request is then served as usual). */
export function captureBodies(fake: ArmFake, operations: string[]): Record<string, unknown[]> {
  const bodies: Record<string, unknown[]> = {};
  for (const op of operations) {
    bodies[op] = [];
    fake.intercept(op, (ctx) => {
      bodies[op]?.push(ctx.body);
      return undefined;
    });
  }
  return bodies;
}
