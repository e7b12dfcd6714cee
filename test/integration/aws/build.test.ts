/**
 * The AWS driver through the real pipeline (runBuild) against the EC2 fake, with real SSH to a
 * loopback sshd: the call sequence, tags on everything, block device mappings, the security group's
 * CIDR, waiters and eventual consistency, host keys from the console, runtimeEnv, region copies and
 * launch permissions, lost responses, and 30% throttling. (One file: loading the SDK costs seconds.)
 */
import { readFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Plan } from '../../../src/definition/plan.js';
import { fingerprint } from '../../../src/ssh/index.js';
import { ALL_REGIONS, aws, callSequence, deleteArtifacts, PUBLISH_REGIONS, REGION, startWorld, tagsOf, type World } from './world.js';

let world: World;

beforeEach(async () => {
  world = await startWorld();
});
afterEach(async () => world?.close());

/** The world as it is while the VM runs (copied when the pipeline reaches stop). */
function watchRunning(plan: Plan) {
  const seen: { instance?: Record<string, unknown>; volumes: Record<string, unknown>[]; group?: Record<string, unknown>; key?: Record<string, unknown> } = { volumes: [] };
  const onProgress = (e: { type: string; step?: string; status?: string }) => {
    if (e.type !== 'step' || e.step !== 'stop' || e.status !== 'started') return;
    const r = world.fake.state.records(REGION);
    const instance = [...r.instances.values()].find((i) => i.tags.get('Name') === aws(plan).names.instance);
    seen.instance = structuredClone({ ...instance });
    seen.volumes = (instance?.volumeIds ?? []).map((id) => structuredClone({ ...r.volumes.get(id) }));
    seen.group = structuredClone({ ...[...r.securityGroups.values()].find((g) => g.name === aws(plan).names.securityGroup) });
    seen.key = structuredClone({ ...[...r.keyPairs.values()].find((k) => k.name === aws(plan).names.keyPair) });
  };
  return { seen, onProgress };
}

describe('the AWS driver in a build', () => {
  it('bakes the AMI through the real pipeline, copies and shares it, tags everything and deletes every temporary', async () => {
    const { fake, machines } = world;
    const plan = world.plan('rawsbuild1');
    const t = aws(plan);
    const driver = world.driver();
    const runtimeEnv = vi.spyOn(driver, 'runtimeEnv');
    const { seen, onProgress } = watchRunning(plan);
    // Eventual consistency, deterministically: the first look at the new instance does not find it.
    fake.failCall('DescribeInstances', 1, 'InvalidInstanceID.NotFound');
    const { result, ledger, paths } = await world.build(plan, { driver, onProgress });
    expect(result.error?.message).toBeUndefined();
    expect(result.status).toBe('succeeded');

    // The calls in the build's region, polls collapsed, in order; each copy region its own three.
    expect(callSequence(fake, REGION)).toEqual([
      'DescribeImages', // the base AMI
      'ImportKeyPair',
      'DescribeVpcs', // the default VPC
      'CreateSecurityGroup',
      'AuthorizeSecurityGroupIngress',
      'RunInstances',
      'DescribeInstances', // waiter: running
      'GetConsoleOutput', // host keys
      'StopInstances',
      'DescribeInstances', // waiter: stopped
      'CreateImage',
      'DescribeImages', // snapshot ids, then waiter: available
      'ModifyImageAttribute', // public
      'CreateTags', // kiln:published on the AMI and its snapshots: products, which no sweep takes
      // cleanup, in reverse order of creation: instance (its volumes go with it), group, key
      'TerminateInstances',
      'DescribeInstances',
      'DeleteSecurityGroup',
      'DeleteKeyPair',
    ]);
    for (const region of PUBLISH_REGIONS) expect(callSequence(fake, region)).toEqual(['CopyImage', 'DescribeImages', 'ModifyImageAttribute', 'CreateTags']);
    // Each waiter really waited: the instance was pending, invisible, stopping, the image pending.
    const calls = fake.calls.filter((c) => c.region === REGION);
    expect(calls.filter((c) => c.action === 'DescribeInstances').length).toBeGreaterThanOrEqual(4);
    expect(calls.some((c) => c.action === 'DescribeInstances' && c.errorCode === 'InvalidInstanceID.NotFound')).toBe(true);
    expect(calls.filter((c) => c.action === 'DescribeImages').length).toBeGreaterThanOrEqual(3);
    expect(fake.unexpectedErrors).toEqual([]);

    // The newest AL2023 x86_64 AMI of Amazon (not arm64, not the newer "minimal" decoy).
    const base = [...fake.state.records(REGION).images.values()].find((i) => i.name === 'al2023-ami-2023.8.20250908.0-kernel-6.1-x86_64');
    expect(result.sourceImage).toBe(`${base?.id} (al2023-ami-2023.8.20250908.0-kernel-6.1-x86_64)`);

    // While it ran: the instance, its volumes, the group and the key, all tagged.
    expect(seen.instance).toMatchObject({ imageId: base?.id, instanceType: 'm6a.2xlarge', keyName: t.names.keyPair, tags: tagsOf(plan, t.names.instance) });
    expect((seen.instance?.clientToken as string) ?? '').toMatch(new RegExp(`^kiln-${plan.buildId}-launch-[0-9a-f]{8}$`));
    expect(seen.volumes).toEqual([
      expect.objectContaining({ size: 50, volumeType: 'gp3', encrypted: false, tags: tagsOf(plan, t.names.instance), attachment: expect.objectContaining({ device: '/dev/xvda', deleteOnTermination: true }) }),
      expect.objectContaining({ size: 500, volumeType: 'gp3', iops: 3000, throughput: 125, encrypted: false, tags: tagsOf(plan, t.names.instance), attachment: expect.objectContaining({ device: '/dev/sdf', deleteOnTermination: true }) }),
    ]);
    expect(seen.instance?.securityGroupIds).toEqual([seen.group?.id]);
    // SSH only, only from the builder (the lookup says 127.0.0.1).
    expect(seen.group?.ingress).toEqual([expect.objectContaining({ ipProtocol: 'tcp', fromPort: 22, toPort: 22, cidrIp: '127.0.0.1/32' })]);
    expect(seen.group?.tags).toEqual(tagsOf(plan, t.names.securityGroup));
    expect(seen.key).toMatchObject({ keyType: 'ed25519', tags: tagsOf(plan, t.names.keyPair) });

    // The provisioning step got the data volume's id (what the guest matches NVMe serials against).
    expect(runtimeEnv).toHaveBeenCalledTimes(1);
    const dataVolume = seen.volumes[1]?.id as string;
    expect(dataVolume).toMatch(/^vol-0[0-9a-f]{16}$/);
    await expect(runtimeEnv.mock.results[0]?.value).resolves.toEqual({ KILN_DATA_DISK_REF: dataVolume });

    // Real SSH with the build's key, host key verified against the console's block.
    const log = await readFile(paths.build(plan.buildId).log, 'utf8');
    expect(log).toContain('1 SSH host key(s)');
    expect(log).toContain(`host key of ${world.sshd.user}@127.0.0.1:${world.sshd.port} verified (${fingerprint(world.sshd.hostPublicKey)})`);
    expect(log).not.toContain('host key will not be verified');
    expect(log).not.toContain('BEGIN OPENSSH PRIVATE KEY');
    expect(world.sshd.log()).toContain(`Accepted publickey for ${world.sshd.user}`);
    expect(world.sshd.log()).toContain(fingerprint(machines.started.at(-1)?.sshPublicKey ?? ''));

    // The AMI in every region, available, tagged (published too), public; its snapshots tagged too.
    const amis = result.artifacts;
    const published = new Map([...tagsOf(plan, t.names.image), ['kiln:published', 'true']]);
    expect(amis.map((a) => a.region)).toEqual(ALL_REGIONS);
    for (const artifact of amis) {
      const r = fake.state.records(artifact.region ?? '');
      const image = r.images.get(artifact.id);
      expect(artifact).toEqual({ kind: 'ami', id: image?.id, name: t.names.image, region: artifact.region, disk: 'both' });
      expect(image).toMatchObject({ name: 'sourcegraph-5.2.0-xs-rawsbuild1', state: 'available', launchGroupAll: true, tags: published });
      expect(image?.mappings.map((m) => [m.deviceName, m.volumeSize, m.encrypted])).toEqual([
        ['/dev/xvda', 50, false],
        ['/dev/sdf', 500, false],
      ]);
      for (const m of image?.mappings ?? []) expect(r.snapshots.get(m.snapshotId ?? '')).toMatchObject({ state: 'completed', tags: published });
      if (artifact.region !== REGION) expect(image).toMatchObject({ sourceImageId: amis[0]?.id, sourceImageRegion: REGION });
    }
    // Nothing else is left; the artifacts left the ledger; the key file is gone.
    const live = fake.state.allLiveResources();
    for (const region of ALL_REGIONS) {
      expect(live[region]).toEqual({ instances: [], volumes: [], keyPairs: [], securityGroups: [], images: [amis.find((a) => a.region === region)?.id], snapshots: expect.any(Array) });
      expect(live[region]?.snapshots).toHaveLength(2);
    }
    expect(ledger.entries()).toEqual([]);
    await expect(readFile(paths.build(plan.buildId).sshKey, 'utf8')).rejects.toThrow(/ENOENT/);

    await deleteArtifacts(world, result);
    expect(fake.state.allLiveResources()).toEqual({});
  });

  it('succeeds with 30% of all calls throttled (RequestLimitExceeded), creating nothing twice', async () => {
    const plan = world.plan('rawsthrottle');
    world.fake.faults.configure({ throttleRate: 0.3, seed: 20250908 });
    const { result } = await world.build(plan);
    world.fake.faults.configure({});
    expect(result.error?.message).toBeUndefined();
    expect(result.status).toBe('succeeded');
    const throttled = world.fake.calls.filter((c) => c.errorCode === 'RequestLimitExceeded');
    expect(throttled.length).toBe(world.fake.faults.served.throttle);
    expect(throttled.length).toBeGreaterThan(15);
    expect(throttled.length / world.fake.calls.length).toBeGreaterThan(0.2);
    // Creates were throttled and retried too, yet each happened once.
    expect(throttled.map((c) => c.action)).toEqual(expect.arrayContaining(['RunInstances', 'CopyImage']));
    const created = (action: string) => world.fake.calls.filter((c) => c.action === action && c.status === 200).length;
    expect([created('RunInstances'), created('CreateImage'), created('CopyImage'), created('CreateSecurityGroup'), created('ImportKeyPair')]).toEqual([1, 1, 6, 1, 1]);
    expect(result.artifacts).toHaveLength(7);
    await deleteArtifacts(world, result);
    expect(world.fake.state.allLiveResources()).toEqual({});
  });

  it('gets the same instance back when RunInstances took effect but its answer was lost (ClientToken)', async () => {
    const plan = world.plan('rawslostrun');
    world.fake.failCall('RunInstances', 1, 'InternalError', { after: true });
    world.fake.failCall('CopyImage', 1, 'InternalError', { after: true });
    world.fake.failCall('CreateSecurityGroup', 1, 'InternalError', { after: true });
    const { result } = await world.build(plan);
    expect(result.error?.message).toBeUndefined();
    expect(result.status).toBe('succeeded');
    const runs = world.fake.calls.filter((c) => c.action === 'RunInstances');
    expect(runs.map((c) => c.status)).toEqual([500, 200]);
    // One instance, one group, one copy per region: retries were idempotent or adopted.
    expect([...world.fake.state.records(REGION).instances.values()]).toHaveLength(1);
    expect(world.fake.calls.filter((c) => c.action === 'CreateSecurityGroup').map((c) => c.errorCode ?? 'ok')).toEqual(['InternalError', 'InvalidGroup.Duplicate']);
    for (const region of PUBLISH_REGIONS) expect(world.fake.state.liveResources(region).images).toHaveLength(1);
    await deleteArtifacts(world, result);
    expect(world.fake.state.allLiveResources()).toEqual({});
  });

  it('allows SSH from the plan\'s sshCidr when it has one, never wider', async () => {
    const plan = world.plan('rawscidr1');
    const withCidr: Plan = { ...plan, access: { ...plan.access, sshCidr: '127.0.0.0/8' }, targetPlan: { ...aws(plan), publish: { regions: [], public: false, accounts: ['210987654321'] } } };
    const lookups: string[] = [];
    const driver = world.driver({ builderAddress: async () => (lookups.push('asked'), '198.51.100.7') });
    const { seen, onProgress } = watchRunning(withCidr);
    // An instance type without the latest console: asked again for the buffered one.
    const latest: Array<string | undefined> = [];
    world.fake.intercept((call) => void (call.action === 'GetConsoleOutput' && latest.push(call.params.str('Latest'))));
    world.fake.failCall('GetConsoleOutput', 1, 'UnsupportedOperation');
    const { result, paths } = await world.build(withCidr, { driver, onProgress });
    expect(result.error?.message).toBeUndefined();
    expect(latest).toEqual(['true', undefined]);
    expect(await readFile(paths.build(withCidr.buildId).log, 'utf8')).toContain('1 SSH host key(s)');
    expect(lookups).toEqual([]);
    expect(seen.group?.ingress).toEqual([expect.objectContaining({ ipProtocol: 'tcp', fromPort: 22, toPort: 22, cidrIp: '127.0.0.0/8' })]);
    // No copies; the one AMI shared with the account only, not public.
    expect(result.artifacts).toEqual([expect.objectContaining({ kind: 'ami', region: REGION })]);
    const image = world.fake.state.records(REGION).images.get(result.artifacts[0]?.id ?? '');
    expect(image?.launchGroupAll).toBe(false);
    expect([...(image?.launchUserIds ?? [])]).toEqual(['210987654321']);
    await deleteArtifacts(world, result);
    expect(world.fake.state.allLiveResources()).toEqual({});
  });

  it('connects unverified (and says so) when the console shows no host keys, and refuses a wrong one', async () => {
    world.machines.consoleKeys = 'none';
    const quiet = world.plan('rawsnokeys');
    const noCopies = (p: Plan): Plan => ({ ...p, targetPlan: { ...aws(p), publish: { regions: [], public: false, accounts: [] } } });
    const driver = world.driver({ timeouts: { hostKeysMs: 200 } });
    const first = await world.build(noCopies(quiet), { driver });
    expect(first.result.error?.message).toBeUndefined();
    const log = await readFile(first.paths.build(quiet.buildId).log, 'utf8');
    expect(log).toMatch(/cannot verify the SSH host key of i-0[0-9a-f]+: no host keys on its console/);
    expect(log).toContain('host key will not be verified');
    await deleteArtifacts(world, first.result);

    world.machines.consoleKeys = 'wrong';
    const spoofed = world.plan('rawswrongkey');
    const second = await world.build(noCopies(spoofed), { stepTimeoutsMs: { connect: 3_000 } });
    expect(second.result.status).toBe('failed');
    expect(second.result.failedStep).toBe('connect');
    expect(second.result.error?.message).toMatch(/host key mismatch/);
    expect(second.result.leftovers).toEqual([]);
    expect(world.fake.state.allLiveResources()).toEqual({});
  });
});
