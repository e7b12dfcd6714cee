/**
 * `kiln build --resume` on the EC2 fake: provisioning fails, `--on-error abort` keeps the instance;
 * once the failure is fixed, the run resumed from its state directory reconnects, provisions again
 * and finishes the image, with the instance the first attempt launched (one RunInstances in all).
 * The failure is the driver's (nothing may run on this host): its provisioning environment throws.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readJsonIfExists } from '../../../src/pipeline/durable-file.js';
import { Ledger } from '../../../src/pipeline/ledger.js';
import type { Manifest } from '../../../src/pipeline/manifest.js';
import { runBuilds, runExitCode } from '../../../src/pipeline/run.js';
import { runPaths } from '../../../src/pipeline/state-dir.js';
import { failingProvision, PUBLISH_REGIONS, REGION, startWorld, type World } from './world.js';

let world: World;

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => world?.close());

describe('kiln build --resume', () => {
  it('finishes the image after a failed provisioning step is fixed, without launching a second instance', async () => {
    const plan = world.plan('rawsresume1');
    const first = await world.build(plan, { onError: 'abort', driver: failingProvision(world.driver()) });
    expect(first.result.status).toBe('failed');
    expect(first.result.failedStep).toBe('provision');
    expect(first.result.error?.code).toBe('PROVISION');
    const kept = first.ledger.entries().map((e) => e.kind);
    expect(kept).toEqual(expect.arrayContaining(['key-pair', 'security-group', 'instance']));
    const [instance] = world.fake.state.liveResources(REGION).instances;
    expect(instance).toBeDefined();

    // Fixed: the same run, resumed as `kiln build --resume` runs it, with a driver that provisions.
    const sshLogins = world.sshd.log().split('Accepted publickey').length;
    const run = await runBuilds({
      plans: [plan],
      driverFor: () => world.driver(),
      stateDir: world.stateDir,
      onError: 'cleanup',
      signal: new AbortController().signal,
      concurrency: 1,
      resume: true,
    });
    const [result] = run.results;
    expect(result?.error?.message).toBeUndefined();
    expect(result?.status).toBe('succeeded');
    expect(runExitCode(run, 1)).toBe(0);
    // It reconnected (the old session died with the first process) and went on from provision.
    expect(Object.keys(result?.timingsMs ?? {})).toEqual(['connect', 'provision', 'stop', 'capture', 'publish']);
    expect(world.sshd.log().split('Accepted publickey').length).toBeGreaterThan(sshLogins);

    // One instance in all, the first one; the image is made from it and copied; nothing else is left.
    expect(world.fake.calls.filter((c) => c.action === 'RunInstances' && c.status === 200)).toHaveLength(1);
    const image = result?.artifacts.find((a) => a.region === REGION);
    expect(world.fake.state.records(REGION).images.get(image?.id ?? '')?.sourceInstanceId).toBe(instance);
    expect(new Set(result?.artifacts.map((a) => a.region))).toEqual(new Set([REGION, ...PUBLISH_REGIONS]));
    const live = world.fake.state.allLiveResources();
    for (const region of Object.values(live)) expect([region.instances, region.volumes, region.keyPairs, region.securityGroups]).toEqual([[], [], [], []]);
    expect((await readJsonIfExists<Manifest>(runPaths(plan.runId, world.stateDir).manifest))?.builds.map((b) => b.status)).toEqual(['succeeded']);
    expect((await Ledger.open(runPaths(plan.runId, world.stateDir).ledger, plan.runId)).entries()).toEqual([]);
  });
});
