/**
 * What the GCE driver tests run against: the wire-level GCE fake (real `@google-cloud/compute`
 * clients over HTTP on 127.0.0.1) whose "machines" are a real sshd on loopback. Booting an instance
 * authorizes the `ssh-keys` metadata's key in that sshd, every natIP is 127.0.0.1, and the driver's
 * test-only `sshPort` points at the sshd's port, so the pipeline's connect step does real SSH with
 * the driver's key and the host keys the driver found. The console prints the sshd's host key block
 * (which the fake also serves as guest attributes), a wrong key, or nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDefinition } from '../../../src/definition/load.js';
import type { Plan } from '../../../src/definition/plan.js';
import { resolve } from '../../../src/definition/resolve.js';
import { runBuild, type BuildOptions, type BuildResult } from '../../../src/pipeline/build.js';
import { Ledger } from '../../../src/pipeline/ledger.js';
import { runPaths, type RunPaths } from '../../../src/pipeline/state-dir.js';
import { generateKeyPair } from '../../../src/ssh/index.js';
import { GcpDriver, type GcpDriverOptions } from '../../../src/targets/gcp/driver.js';
import { LoopbackAddresses, NullMachines, type MachineSpec } from '../../fakes/common/machines.js';
import { gceClientOptions, startGceFake, type GceFake } from '../../fakes/gce/index.js';
import { startSshd, type TestSshd } from '../../support/sshd.js';

export const PROJECT = 'kiln-test';

/** Every instance's external address is the loopback sshd's. */
class SshdAddress extends LoopbackAddresses {
  override allocate(): string {
    return '127.0.0.1';
  }
}

export type ConsoleHostKeys = 'sshd' | 'wrong' | 'none';

/** NullMachines whose boots authorize the instance's key in the sshd, and whose console shows host keys. */
export class SshdMachines extends NullMachines {
  consoleKeys: ConsoleHostKeys = 'sshd';
  readonly started: MachineSpec[] = [];
  private readonly wrongKey = generateKeyPair('not-the-vm').publicKey;

  constructor(private readonly sshd: TestSshd) {
    super();
  }

  override async startMachine(spec: MachineSpec): Promise<void> {
    this.started.push(spec);
    this.sshd.authorize([spec.sshPublicKey]);
  }

  override async consoleOutput(id: string): Promise<string> {
    const key = { sshd: this.sshd.hostPublicKey, wrong: this.wrongKey, none: undefined }[this.consoleKeys];
    const block = key ? `-----BEGIN SSH HOST KEY KEYS-----\n${key.split(' ').slice(0, 2).join(' ')} root@${id}\n-----END SSH HOST KEY KEYS-----\n` : '';
    return `[    0.000000] Linux version 6.8.0 (fake console of ${id})\n${block}login: \n`;
  }
}

/** A driver's options against the fake at `url`: fast retries and polls; SSH to the sshd's port. */
export function testDriverOptions(url: string, sshPort: number): GcpDriverOptions {
  return {
    clientOptions: gceClientOptions(url, { projectId: PROJECT }),
    builderAddress: async () => '127.0.0.1',
    retry: { retries: 12, minTimeoutMs: 1, maxTimeoutMs: 20 },
    pollMs: 2,
    timeouts: { hostKeysMs: 5_000, operationMs: 20_000, imageMs: 20_000, stopMs: 20_000 },
    sshPort,
  };
}

export interface World {
  fake: GceFake;
  sshd: TestSshd;
  machines: SshdMachines;
  stateDir: string;
  /** A fresh plan (own run id) for the flagship definition on gcp, size XS, nothing to provision. */
  plan(runId: string): Plan;
  /** A driver against the fake, fast retries and polls; `options` override. */
  driver(options?: Partial<GcpDriverOptions>): GcpDriver;
  build(plan: Plan, extra?: Partial<BuildOptions> & { driver?: GcpDriver }): Promise<{ result: BuildResult; ledger: Ledger; paths: RunPaths; driver: GcpDriver }>;
  close(): Promise<void>;
}

export async function startWorld(): Promise<World> {
  const sshd = await startSshd();
  const machines = new SshdMachines(sshd);
  const fake = await startGceFake({
    machines,
    addresses: new SshdAddress(),
    synthesizeHostKeys: false,
    // Small but real transitions: every operation is PENDING/RUNNING for a while.
    delays: { 'operation.running': 2, 'instance.staging': 3, 'instance.running': 3, 'instance.terminated': 3, 'image.ready': 20, 'firewall.applied': 2 },
  });
  const stateDir = await mkdtemp(join(tmpdir(), 'kiln-gcp-'));
  const base = await loadDefinition('images/sourcegraph.yaml');
  const drivers: GcpDriver[] = [];

  const driver = (options: Partial<GcpDriverOptions> = {}): GcpDriver => {
    const d = new GcpDriver({ ...testDriverOptions(fake.url, sshd.port), ...options });
    drivers.push(d);
    return d;
  };

  return {
    fake,
    sshd,
    machines,
    stateDir,
    plan: (runId) => {
      const plan = resolve(base, 'gcp', 'xs', '5.2.0', { runId });
      // Nothing may run on this host; the sshd logs in as the current user.
      return { ...plan, provision: [], access: { ...plan.access, sshUser: sshd.user } };
    },
    driver,
    async build(plan, extra = {}) {
      const { driver: given, ...options } = extra;
      const d = given ?? driver();
      const paths = runPaths(plan.runId, stateDir);
      const ledger = await Ledger.open(paths.ledger, plan.runId);
      const result = await runBuild({ plan, driver: d, ledger, paths, onError: 'cleanup', signal: new AbortController().signal, ...options });
      return { result, ledger, paths, driver: d };
    },
    async close() {
      await Promise.all(drivers.map((d) => d.close()));
      await fake.close();
      await sshd.dispose();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/** The fake's API calls (method names) after `from`, without polling (operation waits). */
export function apiCalls(fake: GceFake, from = 0): string[] {
  return fake.requests.slice(from).map((r) => r.method).filter((m) => !m.endsWith('Operations.wait') && !m.endsWith('Operations.get'));
}
