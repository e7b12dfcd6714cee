/**
 * Undo with the AWS driver: a failure at each step of a real pipeline run leaves nothing in the
 * fake; intents whose create answer was lost (only a name or a client token recorded) are found and
 * deleted; a fresh driver given only the ledger deletes everything (`kiln cleanup`); and a fresh
 * driver finds everything by its tags and deletes it (`kiln cleanup --sweep`).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PipelineStepName, Plan } from '../../../src/definition/plan.js';
import type { BuildResult } from '../../../src/pipeline/build.js';
import type { Ledger } from '../../../src/pipeline/ledger.js';
import { sweep } from '../../../src/pipeline/sweep.js';
import { undo } from '../../../src/pipeline/undo.js';
import type { AwsDriver } from '../../../src/targets/aws/driver.js';
import { freePort } from '../../support/sshd.js';
import { ALL_REGIONS, aws, failingProvision, REGION, startWorld, type World } from './world.js';

let world: World;

beforeEach(async () => {
  world = await startWorld();
});
afterEach(async () => world?.close());

/** What every failed build must leave: nothing in the cloud, the ledger or the key file. */
async function expectNothingLeft(plan: Plan, outcome: { result: BuildResult; ledger: Ledger }, step: PipelineStepName): Promise<void> {
  const { result, ledger } = outcome;
  expect(result.status).toBe('failed');
  expect(result.failedStep).toBe(step);
  expect(result.leftovers).toEqual([]);
  expect(ledger.entries()).toEqual([]);
  expect(world.fake.state.allLiveResources()).toEqual({});
  await expect(readFile(join(world.stateDir, 'runs', plan.runId, 'builds', plan.buildId, 'ssh_key'))).rejects.toThrow(/ENOENT/);
  expect(world.fake.unexpectedErrors).toEqual([]);
}

type Arranged = { driver?: AwsDriver; connectMs?: number };

describe('a build that fails cleans up after itself', () => {
  const cases: Array<{ step: PipelineStepName; how: string; arrange: (w: World) => Arranged | Promise<Arranged> | void }> = [
    { step: 'prepare', how: 'the ingress rule is refused', arrange: (w) => void w.fake.failCall('AuthorizeSecurityGroupIngress', 1, 'InvalidPermission.Malformed') },
    { step: 'prepare', how: 'CreateSecurityGroup took effect but its answer was lost (group found by name)', arrange: (w) => void w.fake.failCall('CreateSecurityGroup', 1, 'InvalidParameterValue', { after: true }) },
    { step: 'launch', how: 'RunInstances took effect but its answer was lost (instance found by client token)', arrange: (w) => void w.fake.failCall('RunInstances', 1, 'InvalidParameterValue', { after: true }) },
    { step: 'launch', how: 'the instance fails to start and goes to terminated', arrange: (w) => void (w.machines.failStart = true) },
    { step: 'connect', how: 'nothing answers on the SSH port', arrange: async (w) => ({ driver: w.driver({ sshEndpoint: { port: await freePort() } }), connectMs: 1_500 }) },
    { step: 'provision', how: 'a provisioning step fails', arrange: (w) => ({ driver: failingProvision(w.driver()) }) },
    { step: 'stop', how: 'StopInstances is refused', arrange: (w) => void w.fake.failCall('StopInstances', 1, 'UnauthorizedOperation') },
    { step: 'capture', how: 'CreateImage took effect but its answer was lost (image found by name)', arrange: (w) => void w.fake.failCall('CreateImage', 1, 'InvalidParameterValue', { after: true }) },
    { step: 'capture', how: 'the snapshots fail and the image with them', arrange: (w) => void (w.machines.failSnapshot = true) },
    { step: 'publish', how: 'one CopyImage took effect but its answer was lost (copy found by name)', arrange: (w) => void w.fake.failCall('CopyImage', 3, 'InvalidParameterValue', { after: true }) },
    { step: 'publish', how: 'launch permissions are refused after every copy was made', arrange: (w) => void w.fake.failCall('ModifyImageAttribute', 2, 'InvalidAMIAttributeItemValue') },
  ];

  it.each(cases.map((c, i) => ({ ...c, i })))('in $step when $how', async ({ step, arrange, i }) => {
    const plan = world.plan(`rawsfail${String(i).padStart(2, '0')}`);
    const { driver, connectMs } = (await arrange(world)) ?? {};
    const outcome = await world.build(plan, { driver, stepTimeoutsMs: { connect: connectMs ?? 20_000 } });
    expect(outcome.result.error?.message).toBeDefined();
    await expectNothingLeft(plan, outcome, step);
  });
});

describe('cleanup from a fresh driver', () => {
  it('deletes everything a kept failed build recorded, intents included (kiln cleanup)', async () => {
    const plan = world.plan('rawskept01');
    world.fake.failCall('CreateImage', 1, 'InvalidParameterValue', { after: true });
    const { result, ledger } = await world.build(plan, { onError: 'abort' });
    expect(result.failedStep).toBe('capture');
    const kinds = ledger.entries().map((e) => `${e.kind}${e.id ? '' : ' (intent)'}`);
    expect(kinds).toEqual(['file', 'key-pair', 'security-group', 'volume', 'volume', 'instance', 'image (intent)']);
    expect(world.fake.state.liveResources(REGION)).toMatchObject({ instances: [expect.any(String)], images: [expect.any(String)], snapshots: [expect.any(String), expect.any(String)] });

    const fresh = world.driver();
    const lines: string[] = [];
    const left = await undo(ledger, () => fresh, { log: (line) => lines.push(line) });
    expect(left).toEqual([]);
    expect(ledger.entries()).toEqual([]);
    expect(world.fake.state.allLiveResources()).toEqual({});
  });

  it('finds an instance whose id was never recorded by its client token, even while EC2 does not show it yet', async () => {
    await world.close();
    world = await startWorld({ instanceNotFoundWindowMs: 250 });
    const plan = world.plan('rawsintent1');
    world.fake.failCall('RunInstances', 1, 'InvalidParameterValue', { after: true });
    const { result, ledger } = await world.build(plan, { onError: 'abort' });
    expect(result.failedStep).toBe('launch');
    expect(ledger.entries().filter((e) => !e.id).map((e) => e.kind)).toEqual(['volume', 'volume', 'instance']);
    const lines: string[] = [];
    const from = world.fake.calls.length;
    const left = await undo(ledger, () => world.driver(), { log: (line) => lines.push(line) });
    expect(left).toEqual([]);
    // It was looked for again while invisible (DescribeInstances by client token answered empty).
    expect(world.fake.calls.slice(from).filter((c) => c.action === 'DescribeInstances').length).toBeGreaterThanOrEqual(3);
    expect(lines.join('\n')).toMatch(/found instance i-0[0-9a-f]+ of kiln-rawsintent1-xs-builder by its client token/);
    expect(world.fake.state.allLiveResources()).toEqual({});
  });

  it('waits out DependencyViolation while the group\'s instance is still terminating', async () => {
    const plan = world.plan('rawsdepend1');
    world.fake.failCall('StopInstances', 1, 'UnauthorizedOperation');
    const { ledger } = await world.build(plan, { onError: 'abort' });
    const [group] = ledger.entries().filter((e) => e.kind === 'security-group');
    const [instance] = ledger.entries().filter((e) => e.kind === 'instance');
    const fresh = world.driver();
    const options = { log: () => {}, signal: AbortSignal.timeout(30_000) };
    // The group first, while the instance runs: it must wait for the instance to be terminated.
    const deleting = fresh.destroy(group!, options);
    await fresh.destroy(instance!, options);
    await deleting;
    const deletes = world.fake.calls.filter((c) => c.action === 'DeleteSecurityGroup').map((c) => c.errorCode ?? 'ok');
    expect(deletes[0]).toBe('DependencyViolation');
    expect(deletes.at(-1)).toBe('ok');
    await undo(ledger, () => fresh, { log: () => {} });
    expect(world.fake.state.allLiveResources()).toEqual({});
  });

  it('lists everything tagged kiln:run in the plan regions and deletes it all (kiln cleanup --sweep), but no finished build\'s AMIs', async () => {
    const finished = await world.build(world.plan('rawsdone01'));
    expect(finished.result.status).toBe('succeeded');
    const products = world.fake.state.allLiveResources();
    const plan = world.plan('rawssweep01');
    const shared = world.fake.calls.filter((c) => c.action === 'ModifyImageAttribute').length;
    world.fake.failCall('ModifyImageAttribute', shared + 1, 'InvalidAMIAttributeItemValue');
    const { result } = await world.build(plan, { onError: 'abort' });
    expect(result.failedStep).toBe('publish');

    const fresh = world.driver({ regions: ALL_REGIONS });
    const found = await fresh.listTagged({ signal: AbortSignal.timeout(30_000) });
    const count = (kind: string) => found.filter((r) => r.kind === kind).length;
    expect([count('instance'), count('volume'), count('key-pair'), count('security-group'), count('image'), count('snapshot')]).toEqual([1, 2, 1, 1, 7, 14]);
    expect(found).toHaveLength(26);
    for (const r of found) {
      expect(r).toMatchObject({ target: 'aws', runId: plan.runId, build: plan.buildId, region: expect.any(String) });
      if (r.kind !== 'security-group') expect(Date.parse(r.createdAt ?? '')).toBeGreaterThan(Date.now() - 60_000);
    }
    expect(found.find((r) => r.kind === 'key-pair')).toMatchObject({ name: aws(plan).names.keyPair, region: REGION });
    expect(found.find((r) => r.kind === 'instance')?.extra?.clientToken).toMatch(new RegExp(`^kiln-${plan.buildId}-launch-[0-9a-f]{8}$`));
    expect(new Set(found.filter((r) => r.kind === 'image').map((r) => r.region))).toEqual(new Set(ALL_REGIONS));

    // Another machine's sweep: no local ledgers, only the tags.
    const emptyState = await mkdtemp(join(tmpdir(), 'kiln-aws-sweep-'));
    try {
      const lines: string[] = [];
      const report = await sweep({ stateDir: emptyState, olderThanMs: 0, now: Date.now() + 1_000, targets: ['aws'], driverFor: () => world.driver(), act: true, log: (l) => lines.push(l) });
      expect(report.failed).toEqual([]);
      expect(report.abandonedRuns).toEqual([plan.runId]);
      expect(report.deleted).toHaveLength(26);
    } finally {
      await rm(emptyState, { recursive: true, force: true });
    }
    // The finished build's AMIs and snapshots stay: they are its product.
    expect(world.fake.state.allLiveResources()).toEqual(products);
    expect(await world.driver().listTagged({ signal: AbortSignal.timeout(30_000) })).toEqual([]);
  });
});
