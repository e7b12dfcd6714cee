/**
 * The GCE driver through the real pipeline (runBuild) against the GCE fake, with real SSH to a
 * loopback sshd: the call sequence, labels, the firewall rule, waiting on operations, host keys,
 * IAM sharing, deprecation of the family's previous image, and injected throttling/server errors.
 * (One file for all of it: loading the SDK costs seconds per test file.)
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { GcpTargetPlan, Plan } from '../../../src/definition/plan.js';
import { fingerprint } from '../../../src/ssh/index.js';
import { GceHttpError } from '../../fakes/gce/index.js';
import { apiCalls, PROJECT, startWorld, type World } from './world.js';

let world: World;

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => world?.close());
beforeEach(() => {
  world.machines.consoleKeys = 'sshd';
  world.fake.faults.configure({});
  world.fake.setWaitBound(120_000);
});

const gcp = (plan: Plan) => plan.targetPlan as GcpTargetPlan;
const labelsOf = (plan: Plan) => ({
  'kiln-run': plan.runId,
  'kiln-build': plan.buildId,
  'kiln-definition': 'sourcegraph',
  'kiln-version': '5-2-0',
});

/** Deletes the images a successful build kept (they left the ledger as artifacts). */
async function deleteImages(...plans: Plan[]): Promise<void> {
  const driver = world.driver();
  for (const plan of plans) {
    for (const name of [gcp(plan).names.rootImage, gcp(plan).names.dataImage]) {
      await driver.destroy({ seq: 0, build: plan.buildId, target: 'gcp', kind: 'image', name, role: 'artifact', group: PROJECT, createdAt: '' }, { log: () => {}, signal: AbortSignal.timeout(30_000) });
    }
  }
}

describe('the GCE driver in a build', () => {
  let first: Plan;

  it('bakes both images through the real pipeline, labelled, and deletes every temporary', async () => {
    const { fake, machines } = world;
    first = world.plan('rgcpbuild1');
    const t = gcp(first);
    const from = fake.requests.length;
    // The world as it is while the VM runs (snapshot when the pipeline reaches stop).
    let running: { instance: unknown; disks: unknown[]; firewall: unknown } | undefined;
    const { result, ledger, paths } = await world.build(first, {
      onProgress: (e) => {
        if (e.type !== 'step' || e.step !== 'stop' || e.status !== 'started') return;
        const copy = (v: unknown) => JSON.parse(JSON.stringify(v, (_k, x: unknown) => (x instanceof Map ? Object.fromEntries(x) : x))) as unknown;
        running = {
          instance: copy(fake.state.getInstance(PROJECT, t.zone, t.names.instance)),
          disks: [t.names.bootDisk, t.names.dataDisk].map((d) => copy(fake.state.getDisk(PROJECT, t.zone, d))),
          firewall: copy(fake.state.getFirewall(PROJECT, t.names.firewall)),
        };
      },
    });
    expect(result.error?.message).toBeUndefined();
    expect(result.status).toBe('succeeded');

    // The call sequence, polling left out.
    expect(apiCalls(fake, from)).toEqual([
      'images.getFromFamily', // base image
      'firewalls.insert',
      'instances.insert',
      'instances.get', // natIP
      'instances.getGuestAttributes', // host keys
      'instances.get', // stop: is it running?
      'instances.stop',
      'instances.get', // TERMINATED
      'images.getFromFamily', // the family's previous image
      'images.insert',
      'images.insert',
      'images.get',
      'images.get',
      'images.getIamPolicy',
      'images.setIamPolicy',
      'images.getIamPolicy',
      'images.setIamPolicy',
      'images.get', // the published label: a product, which no sweep takes
      'images.setLabels',
      'images.get',
      'images.setLabels',
      // cleanup, in reverse order of creation: instance (then its disks), disks, firewall; each
      // after looking for operations still running on it, and again after a delete found nothing
      'zoneOperations.list',
      'instances.delete',
      'disks.delete',
      'disks.delete',
      'zoneOperations.list',
      'disks.delete', // gone with the instance
      'zoneOperations.list',
      'zoneOperations.list',
      'disks.delete',
      'zoneOperations.list',
      'globalOperations.list',
      'firewalls.delete',
    ]);
    // Every mutating call was waited on through its operation until DONE.
    const waits = fake.requests.slice(from).filter((r) => r.method.endsWith('Operations.wait'));
    expect(waits.length).toBeGreaterThanOrEqual(9);
    expect(fake.state.pendingOperations()).toEqual([]);

    // The base image, the key, and the SSH login with the host key the guest published.
    expect(result.sourceImage).toBe('https://www.googleapis.com/compute/v1/projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20250313');
    const log = await readFile(paths.build(first.buildId).log, 'utf8');
    expect(log).toContain('1 host key(s) of kiln-rgcpbuild1-xs-builder from guest attributes hostkeys/');
    expect(log).not.toContain('host key will not be verified');
    expect(log).not.toContain('BEGIN OPENSSH PRIVATE KEY');
    expect(world.sshd.log()).toContain(`Accepted publickey for ${world.sshd.user}`);
    expect(machines.started.at(-1)?.sshUser).toBe(world.sshd.user);
    expect(world.sshd.log()).toContain(fingerprint(machines.started.at(-1)?.sshPublicKey ?? ''));

    // The instance: machine type, disks, address, tag, metadata, labels.
    expect(running?.instance).toMatchObject({
      name: t.names.instance,
      status: 'RUNNING',
      machineType: 'n2-standard-8',
      labels: labelsOf(first),
      tags: [t.names.networkTag],
      natIP: '127.0.0.1',
      disks: [
        { diskName: t.names.bootDisk, boot: true, autoDelete: false },
        { diskName: t.names.dataDisk, deviceName: 'kiln-data', boot: false, autoDelete: false },
      ],
      networkInterfaces: [{ network: `projects/${PROJECT}/global/networks/default`, accessConfigs: [{ type: 'ONE_TO_ONE_NAT', natIP: '127.0.0.1' }] }],
      serviceAccounts: [],
    });
    const metadata = (running?.instance as { metadata: { key: string; value: string }[] }).metadata;
    expect(Object.fromEntries(metadata.map((m) => [m.key, m.value]))).toEqual({
      'ssh-keys': expect.stringMatching(new RegExp(`^${world.sshd.user}:ssh-ed25519 AAAA\\S+ kiln-${first.buildId}$`)),
      'enable-guest-attributes': 'TRUE',
      'block-project-ssh-keys': 'TRUE',
    });
    expect(running?.disks).toEqual([
      expect.objectContaining({ name: t.names.bootDisk, sizeGb: 50, type: 'pd-ssd', labels: labelsOf(first), sourceImage: result.sourceImage }),
      expect.objectContaining({ name: t.names.dataDisk, sizeGb: 500, type: 'pd-ssd', labels: labelsOf(first) }),
    ]);
    // SSH only from the builder, only to this build's instance.
    expect(running?.firewall).toMatchObject({
      name: t.names.firewall,
      direction: 'INGRESS',
      sourceRanges: ['127.0.0.1/32'],
      targetTags: [t.names.networkTag],
      allowed: [{ IPProtocol: 'tcp', ports: ['22'] }],
      description: expect.stringContaining(`kiln:build=${first.buildId}`),
    });

    // The images stay, labelled, root in the family; everything else is gone, ledger and key too.
    expect(result.artifacts).toEqual([
      { kind: 'image', id: `https://www.googleapis.com/compute/v1/projects/${PROJECT}/global/images/${t.names.rootImage}`, name: t.names.rootImage, disk: 'root', region: 'us' },
      { kind: 'image', id: `https://www.googleapis.com/compute/v1/projects/${PROJECT}/global/images/${t.names.dataImage}`, name: t.names.dataImage, disk: 'data', region: 'us' },
    ]);
    const root = fake.state.getImage(PROJECT, t.names.rootImage);
    const data = fake.state.getImage(PROJECT, t.names.dataImage);
    const published = { ...labelsOf(first), 'kiln-published': 'true' };
    expect(root).toMatchObject({ status: 'READY', family: 'sourcegraph-xs', storageLocations: ['us'], diskSizeGb: 50 });
    expect(root?.labels).toEqual(published);
    expect(root?.sourceDisk).toMatch(new RegExp(`/zones/${t.zone}/disks/${t.names.bootDisk}$`));
    expect(data).toMatchObject({ status: 'READY', family: undefined, diskSizeGb: 500 });
    expect(data?.labels).toEqual(published);
    expect(data?.sourceDisk).toMatch(new RegExp(`/disks/${t.names.dataDisk}$`));
    // Shared as the plan says.
    for (const image of [root, data]) expect(image?.iam.bindings).toEqual([{ role: 'roles/compute.imageUser', members: ['allAuthenticatedUsers'] }]);
    expect(fake.state.live()).toEqual({ instances: [], disks: [], firewalls: [], images: [expect.objectContaining({ name: t.names.rootImage }), expect.objectContaining({ name: t.names.dataImage })] });
    expect(ledger.entries()).toEqual([]);
    await expect(readFile(paths.build(first.buildId).sshKey, 'utf8')).rejects.toThrow(/ENOENT/);
  });

  it('deprecates the family\'s previous image (never the new one) and shares the new images', async () => {
    const second = world.plan('rgcpbuild2');
    const t1 = gcp(first);
    const t2 = gcp(second);
    // Someone else already granted a reader: the read-modify-write keeps it.
    const removeInterceptor = world.fake.intercept('images.getIamPolicy', (call) => {
      const image = world.fake.state.getImage(PROJECT, String(call.params.resource));
      if (image?.name === t2.names.rootImage && image.iam.bindings.length === 0) image.iam = world.fake.state.newIamPolicy([{ role: 'roles/compute.imageUser', members: ['user:ops@example.com'] }]);
      return undefined;
    });
    try {
      const { result } = await world.build(second);
      expect(result.error?.message).toBeUndefined();
      expect(result.status).toBe('succeeded');
    } finally {
      removeInterceptor();
    }
    const old = world.fake.state.getImage(PROJECT, t1.names.rootImage);
    expect(old?.deprecated).toEqual({ state: 'DEPRECATED', replacement: `https://www.googleapis.com/compute/v1/projects/${PROJECT}/global/images/${t2.names.rootImage}` });
    expect(world.fake.state.getImage(PROJECT, t1.names.dataImage)?.deprecated).toBeUndefined();
    expect(world.fake.state.getImage(PROJECT, t2.names.rootImage)?.deprecated).toBeUndefined();
    expect(world.fake.state.getImage(PROJECT, t2.names.rootImage)?.iam.bindings).toEqual([
      { role: 'roles/compute.imageUser', members: ['user:ops@example.com', 'allAuthenticatedUsers'] },
    ]);
    expect(world.fake.state.getImage(PROJECT, t2.names.dataImage)?.iam.bindings).toEqual([{ role: 'roles/compute.imageUser', members: ['allAuthenticatedUsers'] }]);
    await deleteImages(first, second);
    expect(world.fake.state.isEmpty()).toBe(true);
  });

  it('succeeds with 30% of all calls throttled (429) or failing (503), creating nothing twice', async () => {
    const plan = world.plan('rgcpfaults1');
    const before = { ...world.fake.faults.served };
    const from = world.fake.requests.length;
    world.fake.faults.configure({ throttleRate: 0.15, serverErrorRate: 0.15, seed: 20250313 });
    const { result, paths } = await world.build(plan);
    world.fake.faults.configure({});
    expect(result.error?.message).toBeUndefined();
    expect(result.status).toBe('succeeded');
    const throttled = world.fake.faults.served.throttle - before.throttle;
    const failed = world.fake.faults.served['server-error'] - before['server-error'];
    expect(throttled).toBeGreaterThan(0);
    expect(failed).toBeGreaterThan(0);
    expect(throttled + failed).toBeGreaterThan(5);
    const accepted = (method: string) => world.fake.requests.slice(from).filter((r) => r.method === method && r.status === 200).length;
    expect([accepted('firewalls.insert'), accepted('instances.insert'), accepted('images.insert')]).toEqual([1, 1, 2]);
    expect(await readFile(paths.build(plan.buildId).log, 'utf8')).toMatch(/gcp: .* (rateLimitExceeded|backendError) \(attempt \d+\), retrying/);
    expect(world.fake.state.live().images.map((i) => i.name).sort()).toEqual([gcp(plan).names.dataImage, gcp(plan).names.rootImage].sort());
    await deleteImages(plan);
    expect(world.fake.state.isEmpty()).toBe(true);
  });

  it('keeps waiting on an operation that is not DONE when operations.wait returns', async () => {
    const plan = world.plan('rgcpwait1');
    world.fake.setWaitBound(5);
    world.fake.transitions.setDelays({ 'image.ready': 150 });
    const from = world.fake.requests.length;
    try {
      const { result } = await world.build(plan);
      expect(result.status).toBe('succeeded');
    } finally {
      world.fake.transitions.setDelays({ 'image.ready': 20 });
    }
    const imageOps = world.fake.requests.slice(from).filter((r) => r.method === 'globalOperations.wait');
    // Two image inserts of 150 ms each, waited on in 5 ms slices: many waits, all answered.
    expect(imageOps.length).toBeGreaterThan(6);
    expect(world.fake.state.getImage(PROJECT, gcp(plan).names.rootImage)?.status).toBe('READY');
    await deleteImages(plan);
    expect(world.fake.state.isEmpty()).toBe(true);
  });

  it('verifies the host key from the serial console when guest attributes are not available', async () => {
    const plan = world.plan('rgcpconsole');
    const remove = world.fake.intercept('instances.getGuestAttributes', () => ({ error: new GceHttpError(403, 'forbidden', 'guest attributes are disabled by policy') }));
    try {
      const { result, paths } = await world.build(plan);
      expect(result.status).toBe('succeeded');
      const log = await readFile(paths.build(plan.buildId).log, 'utf8');
      expect(log).toContain('1 host key(s) of kiln-rgcpconsole-xs-builder from the serial console');
      expect(log).toContain(`ssh: connecting to ${world.sshd.user}@127.0.0.1:${world.sshd.port}`);
      expect(log).not.toContain('host key will not be verified');
    } finally {
      remove();
    }
    await deleteImages(plan);
  });

  it('says so and goes on unverified when the guest publishes no host keys', async () => {
    const plan = world.plan('rgcpnokeys');
    world.machines.consoleKeys = 'none';
    const { result, paths } = await world.build(plan, { driver: world.driver({ timeouts: { hostKeysMs: 150 } }) });
    expect(result.status).toBe('succeeded');
    const log = await readFile(paths.build(plan.buildId).log, 'utf8');
    expect(log).toMatch(/gcp: no SSH host keys for kiln-rgcpnokeys-xs-builder: neither guest attributes nor the serial console showed host keys within 150ms/);
    expect(log).toContain('(host key will not be verified)');
    await deleteImages(plan);
    expect(world.fake.state.isEmpty()).toBe(true);
  });
});
