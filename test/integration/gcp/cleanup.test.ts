/**
 * GCE builds that fail at each step leave nothing behind (the fake holds only its seeded public
 * images, the ledger is empty); `kiln cleanup` deletes what an aborted build kept with a fresh driver
 * that knows only the ledger, ids or not, waiting for inserts still in flight on a name; errors
 * name the API's reason and the resource; retries are bounded; `kiln cleanup --sweep` finds what
 * kiln labelled, finished builds' images aside.
 */
import { FirewallsClient } from '@google-cloud/compute';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { GcpTargetPlan, PipelineStepName, Plan } from '../../../src/definition/plan.js';
import { Ledger } from '../../../src/pipeline/ledger.js';
import { sweep } from '../../../src/pipeline/sweep.js';
import { undo } from '../../../src/pipeline/undo.js';
import { GceHttpError, type GceFake } from '../../fakes/gce/index.js';
import { PROJECT, startWorld, type World } from './world.js';

let world: World;
let runs = 0;

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => world?.close());
beforeEach(() => {
  world.machines.consoleKeys = 'sshd';
  world.fake.faults.configure({});
});

const gcp = (plan: Plan) => plan.targetPlan as GcpTargetPlan;
const nextPlan = () => world.plan(`rgcpfail${String(++runs).padStart(2, '0')}`);

/** Arranges for `step` to fail; returns the undo of the arrangement. */
type Sabotage = (fake: GceFake, plan: Plan) => () => void;

const once = (fake: GceFake, method: string, error: GceHttpError): (() => void) => {
  let used = false;
  return fake.intercept(method, () => (used ? undefined : ((used = true), { error })));
};

const cases: { step: PipelineStepName; how: string; sabotage: Sabotage; message: RegExp; resource?: (plan: Plan) => string }[] = [
  {
    step: 'prepare',
    how: 'the firewall operation fails',
    sabotage: (fake) => (fake.failOperations('firewalls.insert', { code: 'QUOTA_EXCEEDED', message: "Quota 'FIREWALLS' exceeded. Limit: 200.0 globally.", httpStatus: 403 }), () => {}),
    message: /creating firewall rule .* failed: QUOTA_EXCEEDED: Quota 'FIREWALLS' exceeded/,
    resource: (p) => `projects/${PROJECT}/global/firewalls/${gcp(p).names.firewall}`,
  },
  {
    step: 'launch',
    how: 'the instance operation fails',
    sabotage: (fake) => (
      fake.failOperations('instances.insert', { code: 'ZONE_RESOURCE_POOL_EXHAUSTED', message: "The zone 'projects/kiln-test/zones/us-central1-f' does not have enough resources available.", httpStatus: 503 }),
      () => {}
    ),
    message: /creating instance .* failed: ZONE_RESOURCE_POOL_EXHAUSTED/,
    resource: (p) => `projects/${PROJECT}/zones/${gcp(p).zone}/instances/${gcp(p).names.instance}`,
  },
  {
    step: 'launch',
    how: 'the instance runs but its address cannot be read',
    sabotage: (fake) => once(fake, 'instances.get', new GceHttpError(403, 'forbidden', "Required 'compute.instances.get' permission")),
    message: /reading instance .* failed: forbidden: Required 'compute.instances.get' permission/,
    resource: (p) => `projects/${PROJECT}/zones/${gcp(p).zone}/instances/${gcp(p).names.instance}`,
  },
  {
    step: 'connect',
    how: 'the VM presents another host key than it published',
    sabotage: () => ((world.machines.consoleKeys = 'wrong'), () => {}),
    message: /host key mismatch on .*127\.0\.0\.1/,
  },
  {
    step: 'stop',
    how: 'the stop operation fails',
    sabotage: (fake) => (fake.failOperations('instances.stop', { code: 'INTERNAL_ERROR', message: 'Internal error. Please try again.', httpStatus: 500 }), () => {}),
    message: /stopping instance .* failed: INTERNAL_ERROR/,
  },
  {
    step: 'capture',
    how: 'the data image fails after the root image was made',
    sabotage: (fake) =>
      fake.intercept('images.insert', (call) =>
        String(call.body.name).endsWith('-data') ? { operationError: { code: 'QUOTA_EXCEEDED', message: "Quota 'IMAGES' exceeded.", httpStatus: 403 } } : undefined,
      ),
    message: /creating image .*-data failed: QUOTA_EXCEEDED/,
    resource: (p) => `projects/${PROJECT}/global/images/${gcp(p).names.dataImage}`,
  },
  {
    step: 'publish',
    how: 'sharing is refused',
    sabotage: (fake) => fake.intercept('images.setIamPolicy', () => ({ error: new GceHttpError(403, 'forbidden', "Required 'compute.images.setIamPolicy' permission") })),
    message: /setting the IAM policy of .* failed: forbidden/,
    resource: (p) => `projects/${PROJECT}/global/images/${gcp(p).names.rootImage}`,
  },
];

describe('a failed GCE build', () => {
  it.each(cases)('failing in $step ($how) leaves nothing behind', async ({ step, sabotage, message, resource }) => {
    const plan = nextPlan();
    const restore = sabotage(world.fake, plan);
    let built;
    try {
      built = await world.build(plan);
    } finally {
      restore();
    }
    const { result, ledger, paths } = built;
    expect(result.status).toBe('failed');
    expect(result.failedStep).toBe(step);
    expect(result.error?.message).toMatch(message);
    if (resource) expect(result.error?.context.resource).toBe(resource(plan));
    expect(result.leftovers).toEqual([]);
    expect(ledger.entries()).toEqual([]);
    expect(world.fake.state.live()).toEqual({ instances: [], disks: [], images: [], firewalls: [] });
    await expect(access(paths.build(plan.buildId).sshKey)).rejects.toThrow(/ENOENT/);
  });

  it('interrupted in provision, is undone', async () => {
    const plan = nextPlan();
    const controller = new AbortController();
    const { result, ledger } = await world.build(plan, {
      signal: controller.signal,
      onProgress: (e) => e.type === 'step' && e.step === 'provision' && e.status === 'started' && controller.abort(),
    });
    expect(result.status).toBe('interrupted');
    expect(result.failedStep).toBe('provision');
    expect(ledger.entries()).toEqual([]);
    expect(world.fake.state.isEmpty()).toBe(true);
  });

  it('gives up after a bounded number of retries, naming the reason and the resource', async () => {
    const plan = nextPlan();
    world.fake.faults.configure({ throttleRate: 1, only: ['images.getFromFamily'] });
    const from = world.fake.requests.length;
    const { result } = await world.build(plan, { driver: world.driver({ retry: { retries: 3, minTimeoutMs: 1, maxTimeoutMs: 5 } }) });
    expect(result.failedStep).toBe('prepare');
    expect(result.error?.code).toBe('CLOUD');
    expect(result.error?.context).toMatchObject({ reason: 'rateLimitExceeded', status: 429, resource: 'projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64' });
    expect(world.fake.requests.slice(from).map((r) => `${r.method} ${r.status}`)).toEqual(Array(4).fill('images.getFromFamily 429'));
    expect(world.fake.state.isEmpty()).toBe(true);
  });
});

describe('kiln cleanup with a fresh driver', () => {
  /** A build kept by on-error abort after failing in `step`; returns the ledger path. */
  async function abandoned(step: 'capture' | 'publish'): Promise<{ plan: Plan; ledgerPath: string }> {
    const plan = nextPlan();
    const remove =
      step === 'publish'
        ? world.fake.intercept('images.setIamPolicy', () => ({ error: new GceHttpError(403, 'forbidden', 'no') }))
        : world.fake.intercept('images.get', () => ({ error: new GceHttpError(403, 'forbidden', 'no') }));
    try {
      const { result, paths } = await world.build(plan, { onError: 'abort' });
      expect(result.failedStep).toBe(step);
      expect(result.leftovers.map((e) => e.kind)).toEqual(['file', 'firewall', 'disk', 'disk', 'instance', 'image', 'image']);
      return { plan, ledgerPath: paths.ledger };
    } finally {
      remove();
    }
  }

  it('deletes everything an aborted build kept, from the ledger alone', async () => {
    const { plan, ledgerPath } = await abandoned('publish');
    const t = gcp(plan);
    expect(world.fake.state.live()).toMatchObject({
      instances: [{ name: t.names.instance, status: 'TERMINATED' }],
      firewalls: [{ name: t.names.firewall }],
    });
    expect(world.fake.state.live().disks).toHaveLength(2);
    expect(world.fake.state.live().images).toHaveLength(2);

    const ledger = await Ledger.open(ledgerPath, plan.runId);
    const lines: string[] = [];
    const fresh = world.driver();
    const left = await undo(ledger, () => fresh, { log: (l) => lines.push(l) });
    expect(left).toEqual([]);
    expect(ledger.entries()).toEqual([]);
    expect(world.fake.state.isEmpty()).toBe(true);
    expect(lines).toContain(`cleanup: deleting gcp instance projects/${PROJECT}/zones/${t.zone}/instances/${t.names.instance} in ${t.zone}`);
  });

  it('deletes by name what has only an intent in the ledger', async () => {
    const { plan, ledgerPath } = await abandoned('capture');
    const kept = (await Ledger.open(ledgerPath, plan.runId)).entries();
    // As if kiln died after each create call went out but before it recorded the id.
    const intents = await Ledger.open(`${ledgerPath}.intents`, plan.runId);
    for (const { seq: _seq, createdAt: _at, id: _id, ...entry } of kept) await intents.intend(entry);
    expect(intents.entries().every((e) => e.id === undefined)).toBe(true);
    const fresh = world.driver();
    const left = await undo(intents, () => fresh, { log: () => {} });
    expect(left).toEqual([]);
    expect(world.fake.state.isEmpty()).toBe(true);
  });
});

describe('deleting while the create is still in flight (kiln died inside the insert)', () => {
  /** A ledger holding only the intent of a firewall rule named for `plan`. */
  async function intentOnly(plan: Plan): Promise<Ledger> {
    const ledger = await Ledger.open(`${world.stateDir}/${plan.runId}-intent.json`, plan.runId);
    await ledger.intend({ build: plan.buildId, target: 'gcp', kind: 'firewall', name: gcp(plan).names.firewall, group: PROJECT, role: 'temporary' });
    return ledger;
  }

  const insertFirewall = (plan: Plan) =>
    new FirewallsClient(world.fake.clientOptions()).insert({
      project: PROJECT,
      firewallResource: { name: gcp(plan).names.firewall, allowed: [{ IPProtocol: 'tcp', ports: ['22'] }], sourceRanges: ['127.0.0.1/32'] },
    });

  it('waits for the insert still running on the name, then deletes what it made', async () => {
    const plan = nextPlan();
    // The insert is accepted, but its work is held until cleanup's first call: a delete by name
    // sent at once would find nothing (a rule exists only once its insert is DONE).
    const remove = world.fake.intercept('firewalls.insert', () => ({ hold: world.fake.nextRequest().then(() => undefined) }));
    try {
      await insertFirewall(plan);
    } finally {
      remove();
    }
    expect(world.fake.state.live().firewalls).toEqual([]);
    const ledger = await intentOnly(plan);
    const lines: string[] = [];
    const from = world.fake.requests.length;
    expect(await undo(ledger, () => world.driver(), { log: (l) => lines.push(l) })).toEqual([]);
    expect(world.fake.state.isEmpty()).toBe(true);
    expect(world.fake.requests.slice(from).map((r) => r.method).filter((m) => !m.endsWith('.wait'))).toEqual(['globalOperations.list', 'firewalls.delete']);
    expect(lines.join('\n')).toMatch(/insert of projects\/kiln-test\/global\/firewalls\/\S+ is still running .*waiting for it before deleting/);
  });

  it('looks again after a notFound, and deletes what an insert arriving meanwhile made', async () => {
    const plan = nextPlan();
    // The insert reaches the API only when the delete does: the delete finds nothing.
    let arrive = () => {};
    const arrived = new Promise<void>((resolve) => (arrive = resolve));
    const holdInsert = world.fake.intercept('firewalls.insert', () => arrived);
    const releaseOnDelete = world.fake.intercept('firewalls.delete', () => void arrive());
    const inserting = insertFirewall(plan);
    try {
      const ledger = await intentOnly(plan);
      const lines: string[] = [];
      expect(await undo(ledger, () => world.driver(), { log: (l) => lines.push(l) })).toEqual([]);
      await inserting;
      expect(world.fake.state.isEmpty()).toBe(true);
      expect(lines.join('\n')).toMatch(/insert of \S+ arrived after a delete found nothing; deleting it again/);
    } finally {
      holdInsert();
      releaseOnDelete();
    }
    const deletes = world.fake.requests.filter((r) => r.method === 'firewalls.delete' && r.path.includes(gcp(plan).names.firewall));
    expect(deletes.map((r) => r.status)).toEqual([404, 200]);
  });
});

describe('kiln cleanup --sweep on GCE', () => {
  it('lists what kiln labelled in every zone, but no finished build\'s images, and deletes it from tags alone', async () => {
    const done = nextPlan();
    expect((await world.build(done)).result.status).toBe('succeeded');
    const plan = nextPlan();
    const remove = world.fake.intercept('images.setIamPolicy', () => ({ error: new GceHttpError(403, 'forbidden', 'no') }));
    try {
      expect((await world.build(plan, { onError: 'abort' })).result.failedStep).toBe('publish');
    } finally {
      remove();
    }
    const t = gcp(plan);
    const found = await world.driver().listTagged({ signal: AbortSignal.timeout(30_000) });
    const summary = found.map((r) => [r.kind, r.name, r.zone]).sort();
    expect(summary).toEqual(
      [
        ['disk', t.names.bootDisk, t.zone],
        ['disk', t.names.dataDisk, t.zone],
        ['firewall', t.names.firewall, undefined],
        ['image', t.names.dataImage, undefined],
        ['image', t.names.rootImage, undefined],
        ['instance', t.names.instance, t.zone],
      ].sort(),
    );
    for (const r of found) {
      expect(r).toMatchObject({ target: 'gcp', runId: plan.runId, build: plan.buildId, group: PROJECT });
      expect(Date.parse(r.createdAt ?? '')).toBeGreaterThan(Date.now() - 120_000);
    }

    // Another machine's sweep: no local ledgers, only the labels.
    const emptyState = await mkdtemp(join(tmpdir(), 'kiln-gcp-sweep-'));
    try {
      const report = await sweep({ stateDir: emptyState, olderThanMs: 0, now: Date.now() + 1_000, targets: ['gcp'], driverFor: () => world.driver(), act: true, log: () => {} });
      expect(report.failed).toEqual([]);
      expect(report.abandonedRuns).toEqual([plan.runId]);
      expect(report.deleted).toHaveLength(6);
    } finally {
      await rm(emptyState, { recursive: true, force: true });
    }
    // The finished build's images stay: they are the product.
    const d = gcp(done);
    expect(world.fake.state.live()).toEqual({ instances: [], disks: [], firewalls: [], images: [expect.objectContaining({ name: d.names.rootImage }), expect.objectContaining({ name: d.names.dataImage })] });
    expect(await world.driver().listTagged({ signal: AbortSignal.timeout(30_000) })).toEqual([]);
    for (const name of [d.names.rootImage, d.names.dataImage]) await world.driver().destroy({ seq: 0, build: done.buildId, target: 'gcp', kind: 'image', name, group: PROJECT, role: 'artifact', createdAt: '' }, { log: () => {}, signal: AbortSignal.timeout(30_000) });
    expect(world.fake.state.isEmpty()).toBe(true);
  });
});
