/**
 * The EC2 fake's volumes on their own, through the unmodified SDK: CreateVolume in a zone,
 * RunInstances in a zone (Placement), AttachVolume and DetachVolume with their state machines and
 * errors, and termination leaving an attached volume that is not DeleteOnTermination.
 */
import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DeleteVolumeCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  waitUntilInstanceRunning,
  waitUntilInstanceTerminated,
  waitUntilVolumeAvailable,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AMAZON_OWNER, type Ec2Fake } from './index.js';
import { FAST_WAIT, RecordingMachines, ec2Client, rejection, withFake } from './testkit.js';

const REGION = 'eu-west-1';
let fake: Ec2Fake;
let ec2: EC2Client;
let machines: RecordingMachines;

beforeEach(async () => {
  machines = new RecordingMachines();
  fake = await withFake({ machines, delays: { 'instance.running': 20, 'instance.terminated': 20, 'volume.available': 30, 'volume.attached': 30, 'volume.detached': 30 } });
  ec2 = ec2Client(fake, REGION);
});
afterEach(async () => {
  expect(fake.unexpectedErrors).toEqual([]);
  expect(fake.state.backendErrors).toEqual([]);
  await fake.close();
});

async function al2023(): Promise<{ imageId: string; snapshotId: string }> {
  const { Images } = await ec2.send(new DescribeImagesCommand({ Owners: [AMAZON_OWNER], Filters: [{ Name: 'name', Values: ['al2023-ami-2023.8.*-kernel-6.1-x86_64'] }] }));
  return { imageId: Images?.[0]?.ImageId as string, snapshotId: Images?.[0]?.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId as string };
}

async function volume(id: string) {
  return (await ec2.send(new DescribeVolumesCommand({ VolumeIds: [id] }))).Volumes?.[0];
}

async function runningIn(zone: string | undefined): Promise<string> {
  const run = await ec2.send(new RunInstancesCommand({ ImageId: (await al2023()).imageId, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1, Placement: zone ? { AvailabilityZone: zone } : undefined }));
  const id = run.Instances?.[0]?.InstanceId as string;
  await waitUntilInstanceRunning({ client: ec2, ...FAST_WAIT }, { InstanceIds: [id] });
  return id;
}

async function availableVolume(zone: string): Promise<string> {
  const created = await ec2.send(new CreateVolumeCommand({ AvailabilityZone: zone, Size: 20, VolumeType: 'gp3' }));
  await waitUntilVolumeAvailable({ client: ec2, ...FAST_WAIT }, { VolumeIds: [created.VolumeId as string] });
  return created.VolumeId as string;
}

describe('CreateVolume', () => {
  it('creates a volume from a snapshot in one zone: creating -> available, tagged, once per ClientToken', async () => {
    const { snapshotId } = await al2023();
    const input = {
      AvailabilityZone: `${REGION}b`,
      SnapshotId: snapshotId,
      Size: 12,
      VolumeType: 'gp3' as const,
      ClientToken: 'customer-data-1',
      TagSpecifications: [{ ResourceType: 'volume' as const, Tags: [{ Key: 'owner', Value: 'customer' }] }],
    };
    const created = await ec2.send(new CreateVolumeCommand(input));
    expect(created).toMatchObject({ State: 'creating', AvailabilityZone: `${REGION}b`, Size: 12, SnapshotId: snapshotId, Iops: 3000, Throughput: 125, Encrypted: false });
    expect((await ec2.send(new CreateVolumeCommand(input))).VolumeId).toBe(created.VolumeId);
    await waitUntilVolumeAvailable({ client: ec2, ...FAST_WAIT }, { VolumeIds: [created.VolumeId as string] });
    expect(await volume(created.VolumeId as string)).toMatchObject({ State: 'available', Attachments: [], Tags: [{ Key: 'owner', Value: 'customer' }] });
    expect(machines.log).toContain(`createDisk ${created.VolumeId} 12 ${snapshotId}`);
    expect(fake.state.liveResources(REGION).volumes).toEqual([created.VolumeId]);
  });

  it('refuses an unknown zone, a missing size and a size below the snapshot', async () => {
    const { snapshotId } = await al2023();
    expect((await rejection(ec2.send(new CreateVolumeCommand({ AvailabilityZone: `${REGION}z`, Size: 5 })))).name).toBe('InvalidParameterValue');
    expect((await rejection(ec2.send(new CreateVolumeCommand({ AvailabilityZone: `${REGION}a` })))).name).toBe('MissingParameter');
    expect((await rejection(ec2.send(new CreateVolumeCommand({ AvailabilityZone: `${REGION}a`, SnapshotId: snapshotId, Size: 4 })))).name).toBe('InvalidParameterValue');
    expect(fake.state.liveResources(REGION).volumes).toEqual([]);
  });
});

describe('RunInstances with Placement', () => {
  it('launches in the default subnet of the zone asked for, and refuses a subnet of another zone', async () => {
    const id = await runningIn(`${REGION}c`);
    const instance = (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations?.[0]?.Instances?.[0];
    expect(instance?.Placement?.AvailabilityZone).toBe(`${REGION}c`);
    const subnet = fake.state.records(REGION).subnets.get(instance?.SubnetId ?? '');
    expect(subnet).toMatchObject({ availabilityZone: `${REGION}c`, defaultForAz: true });
    expect(await runningIn(undefined).then(async (other) => (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [other] }))).Reservations?.[0]?.Instances?.[0]?.Placement?.AvailabilityZone)).toBe(`${REGION}a`);
    const subnetA = [...fake.state.records(REGION).subnets.values()].find((s) => s.availabilityZone === `${REGION}a`)?.id;
    const wrong = await rejection(ec2.send(new RunInstancesCommand({ ImageId: (await al2023()).imageId, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1, SubnetId: subnetA, Placement: { AvailabilityZone: `${REGION}b` } })));
    expect(wrong.name).toBe('InvalidParameterValue');
  });
});

describe('AttachVolume and DetachVolume', () => {
  it('attaching -> attached, listed on the instance; detaching -> available again', async () => {
    const instanceId = await runningIn(`${REGION}b`);
    const volumeId = await availableVolume(`${REGION}b`);
    const attach = await ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' }));
    expect(attach).toMatchObject({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf', State: 'attaching' });
    expect((await volume(volumeId))?.State).toBe('in-use');
    await expect.poll(async () => (await volume(volumeId))?.Attachments?.[0]?.State, { interval: 10 }).toBe('attached');
    expect((await volume(volumeId))?.Attachments?.[0]).toMatchObject({ InstanceId: instanceId, Device: '/dev/sdf', DeleteOnTermination: false });
    const instance = (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }))).Reservations?.[0]?.Instances?.[0];
    expect(instance?.BlockDeviceMappings?.map((m) => [m.DeviceName, m.Ebs?.Status])).toEqual([
      ['/dev/xvda', 'attached'],
      ['/dev/sdf', 'attached'],
    ]);
    expect((await rejection(ec2.send(new DeleteVolumeCommand({ VolumeId: volumeId })))).name).toBe('VolumeInUse');

    const detach = await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId }));
    expect(detach.State).toBe('detaching');
    await waitUntilVolumeAvailable({ client: ec2, ...FAST_WAIT }, { VolumeIds: [volumeId] });
    expect((await volume(volumeId))?.Attachments).toEqual([]);
    expect((await rejection(ec2.send(new DetachVolumeCommand({ VolumeId: volumeId })))).name).toBe('IncorrectState');
  });

  it('answers ZoneMismatch, VolumeInUse, IncorrectState and a device in use as EC2 does', async () => {
    const instanceId = await runningIn(`${REGION}a`);
    const elsewhere = await availableVolume(`${REGION}b`);
    const here = await availableVolume(`${REGION}a`);
    const attach = (VolumeId: string, Device = '/dev/sdg', InstanceId = instanceId) => rejection(ec2.send(new AttachVolumeCommand({ VolumeId, InstanceId, Device })));
    expect((await attach(elsewhere)).name).toBe('InvalidVolume.ZoneMismatch');
    expect((await attach('vol-0123456789abcdef0')).name).toBe('InvalidVolume.NotFound');
    expect((await attach(here, '/dev/xvda')).name).toBe('InvalidParameterValue'); // the root's device
    await ec2.send(new AttachVolumeCommand({ VolumeId: here, InstanceId: instanceId, Device: '/dev/sdg' }));
    expect((await attach(here, '/dev/sdh')).name).toBe('VolumeInUse');
    const creating = await ec2.send(new CreateVolumeCommand({ AvailabilityZone: `${REGION}a`, Size: 1 }));
    expect((await attach(creating.VolumeId as string, '/dev/sdh')).name).toBe('IncorrectState');
    // An instance still pending cannot take a volume.
    fake.transitions.setDelays({ 'instance.running': 60_000 });
    const run = await ec2.send(new RunInstancesCommand({ ImageId: (await al2023()).imageId, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 }));
    await waitUntilVolumeAvailable({ client: ec2, ...FAST_WAIT }, { VolumeIds: [creating.VolumeId as string] });
    expect((await attach(creating.VolumeId as string, '/dev/sdh', run.Instances?.[0]?.InstanceId)).name).toBe('IncorrectState');
    const root = (await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.device', Values: ['/dev/xvda'] }, { Name: 'attachment.instance-id', Values: [instanceId] }] }))).Volumes?.[0];
    expect((await rejection(ec2.send(new DetachVolumeCommand({ VolumeId: root?.VolumeId })))).name).toBe('IncorrectState');
  });

  it('leaves an attached volume that is not DeleteOnTermination when its instance terminates', async () => {
    const instanceId = await runningIn(`${REGION}a`);
    const volumeId = await availableVolume(`${REGION}a`);
    await ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' }));
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    await waitUntilInstanceTerminated({ client: ec2, ...FAST_WAIT }, { InstanceIds: [instanceId] });
    expect(await volume(volumeId)).toMatchObject({ State: 'available', Attachments: [] });
    expect(fake.state.liveResources(REGION).volumes).toEqual([volumeId]);
    expect(machines.log).not.toContain(`deleteDisk ${volumeId}`);
  });
});
