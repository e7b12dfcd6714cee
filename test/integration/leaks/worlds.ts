/**
 * Where the leak tests stop kiln: the three clouds, each a wire-level fake whose machines are a
 * loopback sshd, and the local target (local-world.ts). Each gives what a child needs to build
 * there, a fresh driver that knows only how to reach the cloud (for `kiln cleanup` from the ledger
 * alone), what the fake (or this machine) still holds, and how to stop the child in the middle of a
 * create call.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDriver } from '../../../src/targets/drivers.js';
import type { TargetDriver } from '../../../src/targets/target.js';
import { startSshd } from '../../support/sshd.js';
import { LATE_CALL_CONSISTENCY_MS, startWorld as startAwsWorld, testDriverOptions } from '../aws/world.js';
import { GALLERY_TYPES, startHarness } from '../azure/harness.js';
import { startWorld as startGcpWorld } from '../gcp/world.js';
import type { ChildConfig, LeakTarget } from './child.js';
import { localWorld } from './local-world.js';

/** What a create call's hook may ask of the fake once it has stopped the child. */
export interface AfterStop {
  /** GCE: keep the call's operation PENDING until the next request (cleanup's first) arrives. */
  holdOperation?: boolean;
}

export interface LeakWorld {
  target: LeakTarget;
  stateDir: string;
  /** The child's config for a run, but its run id, version and stop point. */
  config(): Omit<ChildConfig, 'runId' | 'version' | 'stopAt'>;
  /** A driver given nothing but how to reach the cloud. */
  fresh(): Promise<TargetDriver>;
  /** What the fake holds beyond what it was seeded with and kiln's shared homes (nothing, when all is well). */
  left(): Promise<unknown>;
  /**
   * Runs `stop` when the fake receives the `nth` call of `action` that names `runId`, before
   * serving it; then serves it. Returns a remover.
   */
  intercept(action: string, runId: string, nth: number, stop: () => Promise<void>): () => void;
  close(): Promise<void>;
}

/** Counts the calls naming `runId` (in their path or body) and says when the nth arrives. */
function nthCallOf(runId: string, nth: number): (request: unknown) => boolean {
  let seen = 0;
  return (request) => JSON.stringify(request).includes(runId) && ++seen === nth;
}

async function gcpWorld(): Promise<LeakWorld> {
  const world = await startGcpWorld();
  const { sshd } = world;
  return {
    target: 'gcp',
    stateDir: world.stateDir,
    config: () => ({ url: world.fake.url, sshHost: '127.0.0.1', sshPort: sshd.port, sshUser: sshd.user, stateDir: world.stateDir }),
    fresh: async () => world.driver(),
    left: async () => {
      const live = world.fake.state.live();
      return { instances: live.instances.map((r) => r.name), disks: live.disks.map((r) => r.name), images: live.images.map((r) => r.name), firewalls: live.firewalls.map((r) => r.name) };
    },
    intercept: (action, runId, nth, stop) => {
      const isIt = nthCallOf(runId, nth);
      return world.fake.intercept(action, async (call) => {
        if (!isIt({ params: call.params, body: call.body })) return undefined;
        await stop();
        // The insert is accepted, but its work waits until cleanup has made its first call: a
        // delete by name that does not wait for it would find nothing, and the insert leak.
        return { hold: world.fake.nextRequest().then(() => undefined) };
      });
    },
    close: () => world.close(),
  };
}

async function awsWorld(): Promise<LeakWorld> {
  const world = await startAwsWorld();
  const { sshd } = world;
  return {
    target: 'aws',
    stateDir: world.stateDir,
    config: () => ({ url: world.fake.url, sshHost: '127.0.0.1', sshPort: sshd.port, sshUser: sshd.user, stateDir: world.stateDir }),
    fresh: async () => world.driver({ timing: testDriverOptions(world.fake.url, sshd.port, LATE_CALL_CONSISTENCY_MS).timing }),
    left: async () => world.fake.state.allLiveResources(),
    intercept: (action, runId, nth, stop) => {
      const isIt = nthCallOf(runId, nth);
      return world.fake.intercept(async (call) => (call.action === action && isIt(call.params) ? stop() : undefined));
    },
    close: () => world.close(),
  };
}

async function azureWorld(): Promise<LeakWorld> {
  const sshd = await startSshd();
  const h = await startHarness(sshd);
  const stateDir = await mkdtemp(join(tmpdir(), 'kiln-azure-leaks-'));
  return {
    target: 'azure',
    stateDir,
    config: () => ({ url: h.fake.url, ca: h.fake.ca, subscriptionId: h.fake.subscriptionId, sshHost: sshd.host, sshPort: sshd.port, sshUser: sshd.user, stateDir }),
    fresh: async () => {
      const { credential, options, pollOptions } = h.fake.clientOptions();
      return createDriver('azure', { azure: { credential, clientOptions: options, pollIntervalMs: pollOptions.updateIntervalInMs, inUseTimeoutMs: 5_000 } });
    },
    left: async () => {
      // The gallery's group, gallery and image definition are shared homes, made once and kept.
      const { resources, backend } = h.fake.inventory();
      const kept = Object.entries(resources)
        .filter(([type]) => !GALLERY_TYPES.includes(type))
        .map(([type, ids]) => [type, ids.filter((id) => !/\/resourceGroups\/sourcegraph-images$/i.test(id))] as const)
        .filter(([, ids]) => ids.length > 0);
      return { resources: Object.fromEntries(kept), backend };
    },
    intercept: (action, runId, nth, stop) => {
      const isIt = nthCallOf(runId, nth);
      return h.fake.intercept(action, async (ctx) => {
        if (isIt({ path: ctx.path, body: ctx.body })) await stop();
        return undefined;
      });
    },
    close: async () => {
      await h.close();
      await sshd.dispose();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

export const EMPTY: Record<LeakTarget, unknown> = {
  gcp: { instances: [], disks: [], images: [], firewalls: [] },
  aws: {},
  azure: { resources: {}, backend: { disks: [], snapshots: [], machines: {} } },
  local: { qemu: [], outputs: [] },
};

/** Each world with an sshd of its own (a machine's boot replaces the keys its sshd lets in). */
export async function startWorlds(): Promise<{ worlds: Record<LeakTarget, LeakWorld>; close: () => Promise<void> }> {
  const [gcp, aws, azure, local] = await Promise.all([gcpWorld(), awsWorld(), azureWorld(), localWorld()]);
  return {
    worlds: { gcp, aws, azure, local },
    close: async () => {
      await Promise.all([gcp.close(), aws.close(), azure.close(), local.close()]);
    },
  };
}
