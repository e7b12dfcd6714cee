/**
 * The GCE driver's validation instance (`launchInstance`) against the GCE fake, from the images of a
 * real build through the pipeline: what it launches (images, machine type, labels, the only key,
 * SSH from the builder only), real SSH to it, stopping it, an existing data disk that survives
 * undo, clear errors for a missing or busy disk, and nothing left when any create fails.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { GcpTargetPlan, Plan } from '../../../src/definition/plan.js';
import { BuildLog } from '../../../src/pipeline/build-log.js';
import { BuildState } from '../../../src/pipeline/build-state.js';
import { ResourceRecorder, type BuildContext } from '../../../src/pipeline/context.js';
import { Ledger } from '../../../src/pipeline/ledger.js';
import { runPaths } from '../../../src/pipeline/state-dir.js';
import { undo } from '../../../src/pipeline/undo.js';
import { fingerprint, generateKeyPair, SshSession } from '../../../src/ssh/index.js';
import type { GcpDriver } from '../../../src/targets/gcp/driver.js';
import { validationNames } from '../../../src/targets/gcp/validation-instance.js';
import type { Artifact } from '../../../src/targets/target.js';
import { VALIDATION_SUFFIX } from '../../../src/validate/validate.js';
import { GceHttpError } from '../../fakes/gce/index.js';
import { computeClients, operationOf, untilDone, type ComputeClients } from '../../fakes/gce/sdk-helpers.js';
import { apiCalls, PROJECT, startWorld, type World } from './world.js';

let world: World;
let built: Plan;
let images: Artifact[];
let sdk: ComputeClients;
let runs = 0;
/** Every validation's undo: what a failed test left is deleted before the next test looks. */
const undos: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  world = await startWorld();
  sdk = computeClients(world.fake);
  built = world.plan('rgcpvalbase');
  const { result } = await world.build(built);
  expect(result.status).toBe('succeeded');
  images = result.artifacts;
});
afterAll(async () => {
  if (world && built) {
    const driver = world.driver();
    for (const name of [gcp(built).names.rootImage, gcp(built).names.dataImage]) {
      await driver.destroy({ seq: 0, build: built.buildId, target: 'gcp', kind: 'image', name, role: 'artifact', group: PROJECT, createdAt: '' }, { log: () => {}, signal: AbortSignal.timeout(30_000) });
    }
    expect(world.fake.state.isEmpty()).toBe(true);
  }
  await sdk?.close();
  await world?.close();
});
beforeEach(() => {
  world.machines.consoleKeys = 'sshd';
  world.fake.faults.configure({});
});
afterEach(async () => {
  for (const undoIt of undos.splice(0)) await undoIt();
});

const gcp = (plan: Plan) => plan.targetPlan as GcpTargetPlan;
const zone = () => gcp(built).zone;
const diskLink = (name: string) => `https://www.googleapis.com/compute/v1/projects/${PROJECT}/zones/${zone()}/disks/${name}`;

/** A validation of the build's images as validateImages sets it up: its own build id, ledger entries and key. */
async function validation(driver: GcpDriver = world.driver(), artifacts: Artifact[] = images) {
  const runId = `rgcpval${String(++runs).padStart(2, '0')}`;
  const source = world.plan(runId);
  const plan: Plan = { ...source, buildId: `${source.buildId}${VALIDATION_SUFFIX}` };
  const paths = runPaths(runId, world.stateDir);
  const ledger = await Ledger.open(paths.ledger, runId);
  const lines: string[] = [];
  const controller = new AbortController();
  const ctx: BuildContext = {
    plan,
    resources: new ResourceRecorder(ledger, plan),
    state: await BuildState.open(paths.build(plan.buildId).state, plan.buildId),
    paths: paths.build(plan.buildId),
    log: new BuildLog(undefined, (line) => lines.push(line)),
    signal: controller.signal,
  };
  const key = generateKeyPair(`kiln-validate-${plan.buildId}`);
  const undoIt = () => undo(ledger, () => driver, { build: plan.buildId, log: (l) => lines.push(l) });
  undos.push(undoIt);
  return {
    plan,
    ctx,
    ledger,
    lines,
    controller,
    key,
    names: validationNames(plan.buildId),
    launch: (dataDisk?: string) => driver.launchInstance(ctx, artifacts, { publicKey: key.publicKey, privateKey: key.privateKey, dataDisk }),
    undo: undoIt,
  };
}

/** A disk the customer keeps (not kiln's: in no ledger). */
async function customerDisk(name: string): Promise<void> {
  const op = operationOf(await sdk.disks.insert({ project: PROJECT, zone: zone(), diskResource: { name, sizeGb: '500', type: `zones/${zone()}/diskTypes/pd-ssd` } }));
  expect((await untilDone(sdk, PROJECT, op)).error).toBeFalsy();
}

async function deleteCustomerDisk(name: string): Promise<void> {
  await untilDone(sdk, PROJECT, operationOf(await sdk.disks.delete({ project: PROJECT, zone: zone(), disk: name })));
}

/** Nothing but the build's images (and the given customer disks) is left in the fake. */
function expectOnlyImages(...keptDisks: string[]): void {
  const live = world.fake.state.live();
  expect({ instances: live.instances, firewalls: live.firewalls, disks: live.disks.map((d) => d.name) }).toEqual({ instances: [], firewalls: [], disks: keptDisks });
  expect(live.images.map((i) => i.name).sort()).toEqual([gcp(built).names.dataImage, gcp(built).names.rootImage].sort());
}

describe('the GCE validation instance', () => {
  it('launches from the build\'s images with only the validation key, SSH from the builder, and is undone', async () => {
    const v = await validation();
    const driver = world.driver();
    const from = world.fake.requests.length;
    const access = await driver.launchInstance(v.ctx, images, { publicKey: v.key.publicKey, privateKey: v.key.privateKey });
    expect(apiCalls(world.fake, from)).toEqual(['firewalls.insert', 'instances.insert', 'instances.get', 'instances.getGuestAttributes']);

    const [root, data] = [gcp(built).names.rootImage, gcp(built).names.dataImage].map((n) => `https://www.googleapis.com/compute/v1/projects/${PROJECT}/global/images/${n}`);
    expect(images.map((a) => [a.disk, a.id])).toEqual([['root', root], ['data', data]]);
    const labels = { 'kiln-run': v.plan.runId, 'kiln-build': v.plan.buildId, 'kiln-definition': 'sourcegraph', 'kiln-version': '5-2-0' };
    const instance = world.fake.state.getInstance(PROJECT, zone(), v.names.instance);
    expect(instance).toMatchObject({
      name: `kiln-${v.plan.buildId}-vm`,
      status: 'RUNNING',
      machineType: 'n2-standard-8',
      labels,
      tags: [v.names.networkTag],
      disks: [
        { diskName: v.names.bootDisk, boot: true, autoDelete: true },
        { diskName: v.names.dataDisk, deviceName: 'kiln-data', boot: false, autoDelete: true },
      ],
      serviceAccounts: [],
    });
    expect(v.names.instance).not.toBe(gcp(v.plan).names.instance);
    // The only key: the validation key, for the plan's user; no project-wide keys.
    expect(Object.fromEntries((instance?.metadata ?? []).map((m) => [m.key, m.value]))).toEqual({
      'ssh-keys': `${world.sshd.user}:${v.key.publicKey}`,
      'enable-guest-attributes': 'TRUE',
      'block-project-ssh-keys': 'TRUE',
    });
    expect(world.machines.started.at(-1)).toMatchObject({ sshUser: world.sshd.user, sshPublicKey: v.key.publicKey.split(' ').slice(0, 2).join(' ') });
    expect(world.fake.state.getDisk(PROJECT, zone(), v.names.bootDisk)).toMatchObject({ sourceImage: root, sizeGb: 50, type: 'pd-ssd', labels });
    expect(world.fake.state.getDisk(PROJECT, zone(), v.names.dataDisk)).toMatchObject({ sourceImage: data, sizeGb: 500, type: 'pd-ssd', labels });
    expect(world.fake.state.getFirewall(PROJECT, v.names.firewall)).toMatchObject({
      direction: 'INGRESS',
      sourceRanges: ['127.0.0.1/32'],
      targetTags: [v.names.networkTag],
      allowed: [{ IPProtocol: 'tcp', ports: ['22'] }],
      description: expect.stringContaining(`kiln:build=${v.plan.buildId}`),
    });
    // Everything in the validation build's ledger entries, ids and all.
    expect(v.ledger.entries({ build: v.plan.buildId }).map((e) => [e.kind, e.name, e.id])).toEqual([
      ['firewall', v.names.firewall, `projects/${PROJECT}/global/firewalls/${v.names.firewall}`],
      ['disk', v.names.bootDisk, `projects/${PROJECT}/zones/${zone()}/disks/${v.names.bootDisk}`],
      ['disk', v.names.dataDisk, `projects/${PROJECT}/zones/${zone()}/disks/${v.names.dataDisk}`],
      ['instance', v.names.instance, `projects/${PROJECT}/zones/${zone()}/instances/${v.names.instance}`],
    ]);

    // Real SSH with what it returned, the host key verified.
    expect(access).toEqual({ host: '127.0.0.1', port: world.sshd.port, username: world.sshd.user, privateKey: v.key.privateKey, hostKeys: [world.sshd.hostPublicKey.split(' ').slice(0, 2).join(' ')] });
    const session = await SshSession.connect({ ...access, timeoutMs: 15_000, signal: v.ctx.signal, onLog: (l) => v.lines.push(l) });
    try {
      expect((await session.exec('echo validated', { quiet: true })).stdoutTail).toBe('validated');
    } finally {
      session.close();
    }
    expect(world.sshd.log()).toContain(fingerprint(v.key.publicKey));
    expect(v.lines.join('\n')).not.toContain('host key will not be verified');

    await driver.stop(v.ctx);
    expect(world.fake.state.getInstance(PROJECT, zone(), v.names.instance)?.status).toBe('TERMINATED');
    expect(v.lines).toContain(`gcp: instance ${v.names.instance} stopped`);

    expect(await v.undo()).toEqual([]);
    expect(v.ledger.entries()).toEqual([]);
    expectOnlyImages();
  });

  it('attaches an existing data disk instead of the image\'s, and undo leaves it', async () => {
    await customerDisk('customer-data');
    const v = await validation();
    const from = world.fake.requests.length;
    await v.launch('customer-data');
    expect(apiCalls(world.fake, from)).toEqual(['disks.get', 'firewalls.insert', 'instances.insert', 'instances.get', 'instances.getGuestAttributes']);
    expect(world.fake.state.getInstance(PROJECT, zone(), v.names.instance)?.disks).toEqual([
      expect.objectContaining({ diskName: v.names.bootDisk, boot: true, autoDelete: true }),
      expect.objectContaining({ diskName: 'customer-data', deviceName: 'kiln-data', boot: false, autoDelete: false }),
    ]);
    expect(world.fake.state.getDisk(PROJECT, zone(), v.names.dataDisk)).toBeUndefined();
    // Only what it created is recorded, and the instance's entry names no data disk to delete with it.
    const entries = v.ledger.entries({ build: v.plan.buildId });
    expect(entries.map((e) => [e.kind, e.name])).toEqual([
      ['firewall', v.names.firewall],
      ['disk', v.names.bootDisk],
      ['instance', v.names.instance],
    ]);
    expect(entries.at(-1)?.extra).toEqual({ bootDisk: v.names.bootDisk });
    expect(v.lines.join('\n')).toContain(`data disk projects/${PROJECT}/zones/${zone()}/disks/customer-data`);

    // A clean shutdown first (the validation does this with a given disk), then undo.
    await world.driver().stop(v.ctx);
    expect(world.fake.state.getInstance(PROJECT, zone(), v.names.instance)?.status).toBe('TERMINATED');
    expect(await v.undo()).toEqual([]);
    expect(world.fake.state.getDisk(PROJECT, zone(), 'customer-data')).toMatchObject({ status: 'READY', users: [] });
    expectOnlyImages('customer-data');

    // The disk by its selfLink, a second time: it is whole and free again.
    const again = await validation();
    await again.launch(diskLink('customer-data'));
    expect(world.fake.state.getInstance(PROJECT, zone(), again.names.instance)?.disks[1]).toMatchObject({ diskName: 'customer-data', autoDelete: false });
    expect(await again.undo()).toEqual([]);
    expectOnlyImages('customer-data');
    await deleteCustomerDisk('customer-data');
  });

  it('gets a blank data disk when given only a root image (an image id for kiln validate)', async () => {
    const root = images.filter((a) => a.disk === 'root');
    const v = await validation(world.driver(), [{ kind: 'image', id: root[0]?.id ?? '', disk: 'root' }]);
    await v.launch();
    expect(world.fake.state.getDisk(PROJECT, zone(), v.names.bootDisk)?.sourceImage).toBe(root[0]?.id);
    const data = world.fake.state.getDisk(PROJECT, zone(), v.names.dataDisk);
    expect(data).toMatchObject({ sizeGb: 500, type: 'pd-ssd' });
    expect(data).not.toHaveProperty('sourceImage');
    expect(v.lines.join('\n')).toContain('data disk a new blank disk');
    expect(await v.undo()).toEqual([]);
    expectOnlyImages();

    const none = await validation(world.driver(), images.filter((a) => a.disk === 'data'));
    await expect(none.launch()).rejects.toMatchObject({ code: 'VALIDATION', message: expect.stringMatching(/no GCE root image among the artifacts/) });
    expect(none.ledger.entries()).toEqual([]);
  });

  it('refuses a data disk that is missing, in use, in another zone or no disk at all, before creating anything', async () => {
    await customerDisk('customer-busy');
    const holder = await validation();
    await holder.launch('customer-busy');
    const holderPath = `projects/${PROJECT}/zones/${zone()}/instances/${holder.names.instance}`;
    const cases: { disk: string; message: RegExp; context: Record<string, unknown> }[] = [
      {
        disk: 'customer-missing',
        message: /^--data-disk: GCE disk projects\/kiln-test\/zones\/us-central1-f\/disks\/customer-missing does not exist$/,
        context: { field: '--data-disk', reason: 'notFound', resource: `projects/${PROJECT}/zones/${zone()}/disks/customer-missing` },
      },
      {
        disk: diskLink('customer-busy'),
        message: new RegExp(`^--data-disk: GCE disk \\S+/customer-busy is attached to ${holderPath}: detach it first`),
        context: { field: '--data-disk', reason: 'resourceInUseByAnotherResource', resource: `projects/${PROJECT}/zones/${zone()}/disks/customer-busy` },
      },
      {
        disk: `projects/${PROJECT}/zones/europe-west4-a/disks/customer-busy`,
        message: /europe-west4-a\/disks\/customer-busy is not where the instance launches, project kiln-test, zone us-central1-f \(targets\.gcp\)/,
        context: { field: '--data-disk' },
      },
      { disk: `projects/elsewhere/zones/${zone()}/disks/customer-busy`, message: /a disk attaches only in its own project and zone/, context: { field: '--data-disk' } },
      { disk: '/dev/sdb', message: /"\/dev\/sdb" is not a GCE disk: expected a disk name or projects\/<project>\/zones\/<zone>\/disks\/<name>/, context: { field: '--data-disk' } },
    ];
    for (const c of cases) {
      const v = await validation();
      const from = world.fake.requests.length;
      const error = await v.launch(c.disk).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error, c.disk).toMatchObject({ code: 'INPUT', exitCode: 2, message: expect.stringMatching(c.message), context: c.context });
      expect(apiCalls(world.fake, from).filter((m) => m !== 'disks.get'), c.disk).toEqual([]);
      expect(v.ledger.entries({ build: v.plan.buildId })).toEqual([]);
    }
    expect(await holder.undo()).toEqual([]);
    expectOnlyImages('customer-busy');
    await deleteCustomerDisk('customer-busy');
  });
});

describe('a GCE validation instance that fails half-way', () => {
  const cases: { how: string; sabotage: () => () => void; message: RegExp }[] = [
    {
      how: 'the firewall operation fails',
      sabotage: () => (world.fake.failOperations('firewalls.insert', { code: 'QUOTA_EXCEEDED', message: "Quota 'FIREWALLS' exceeded.", httpStatus: 403 }), () => {}),
      message: /creating firewall rule .* failed: QUOTA_EXCEEDED/,
    },
    {
      how: 'the instance insert is refused',
      sabotage: () => world.fake.intercept('instances.insert', () => ({ error: new GceHttpError(403, 'forbidden', "Required 'compute.instances.create' permission") })),
      message: /creating instance .*-vm failed: forbidden/,
    },
    {
      how: 'the instance operation fails',
      sabotage: () => (world.fake.failOperations('instances.insert', { code: 'ZONE_RESOURCE_POOL_EXHAUSTED', message: 'not enough resources', httpStatus: 503 }), () => {}),
      message: /creating instance .*-vm failed: ZONE_RESOURCE_POOL_EXHAUSTED/,
    },
    {
      how: 'the instance runs but its address cannot be read',
      sabotage: () => {
        let used = false;
        return world.fake.intercept('instances.get', () => (used ? undefined : ((used = true), { error: new GceHttpError(403, 'forbidden', 'no') })));
      },
      message: /reading instance .*-vm failed: forbidden/,
    },
  ];

  it.each(cases)('leaves nothing after undo when $how', async ({ sabotage, message }) => {
    const v = await validation();
    const restore = sabotage();
    try {
      await expect(v.launch()).rejects.toThrow(message);
    } finally {
      restore();
    }
    expect(await v.undo()).toEqual([]);
    expect(v.ledger.entries()).toEqual([]);
    expectOnlyImages();
  });

  it('leaves nothing after undo when interrupted inside the instance insert, which completes later', async () => {
    const v = await validation();
    // The insert is accepted, kiln is interrupted, and the instance comes into being only once
    // undo has started (its operation is held until undo's first call).
    const remove = world.fake.intercept('instances.insert', () => {
      v.controller.abort();
      return { hold: world.fake.nextRequest().then(() => undefined) };
    });
    try {
      await expect(v.launch()).rejects.toMatchObject({ code: 'INTERRUPTED' });
    } finally {
      remove();
    }
    expect(v.ledger.entries({ build: v.plan.buildId }).map((e) => e.kind)).toEqual(['firewall', 'disk', 'disk', 'instance']);
    expect(await v.undo()).toEqual([]);
    expect(v.lines.join('\n')).toMatch(/insert of \S+-vm is still running .*waiting for it before deleting/);
    expectOnlyImages();
  });
});
