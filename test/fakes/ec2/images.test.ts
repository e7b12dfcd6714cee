import {
  CopyImageCommand,
  CreateImageCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  ModifyImageAttributeCommand,
  RunInstancesCommand,
  waitUntilImageAvailable,
  waitUntilInstanceRunning,
  waitUntilInstanceStopped,
  StopInstancesCommand,
  type EC2Client,
  type Image,
} from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AMAZON_OWNER, CANONICAL_OWNER, type Ec2Fake } from './index.js';
import { FAST_WAIT, RecordingMachines, ec2Client, gate, rejection, withFake } from './testkit.js';

const newest = (images: Image[] | undefined) =>
  [...(images ?? [])].sort((a, b) => (b.CreationDate ?? '').localeCompare(a.CreationDate ?? ''))[0];

let fake: Ec2Fake;
let ec2: EC2Client;
let machines: RecordingMachines;

beforeEach(async () => {
  machines = new RecordingMachines();
  fake = await withFake({ machines });
  ec2 = ec2Client(fake, 'us-west-2');
});
afterEach(async () => {
  expect(fake.unexpectedErrors).toEqual([]);
  await fake.close();
});

async function baseImageId(): Promise<string> {
  const { Images } = await ec2.send(
    new DescribeImagesCommand({ Owners: [AMAZON_OWNER], Filters: [{ Name: 'name', Values: ['al2023-ami-2023.*-kernel-6.1-x86_64'] }] }),
  );
  return newest(Images)?.ImageId as string;
}

/** A stopped builder instance with a root and a data disk. */
async function stoppedInstance(): Promise<string> {
  const run = await ec2.send(
    new RunInstancesCommand({
      ImageId: await baseImageId(),
      InstanceType: 't3.large',
      MinCount: 1,
      MaxCount: 1,
      BlockDeviceMappings: [
        { DeviceName: '/dev/xvda', Ebs: { VolumeSize: 20, VolumeType: 'gp3' } },
        { DeviceName: '/dev/sdf', Ebs: { VolumeSize: 50, VolumeType: 'gp3', DeleteOnTermination: true } },
      ],
    }),
  );
  const id = run.Instances?.[0]?.InstanceId as string;
  await waitUntilInstanceRunning({ client: ec2, ...FAST_WAIT }, { InstanceIds: [id] });
  await ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
  await waitUntilInstanceStopped({ client: ec2, ...FAST_WAIT }, { InstanceIds: [id] });
  return id;
}

describe('DescribeImages', () => {
  it('selects the newest Amazon Linux 2023 image by owner and name wildcard', async () => {
    const { Images } = await ec2.send(
      new DescribeImagesCommand({
        Owners: [AMAZON_OWNER],
        Filters: [
          { Name: 'name', Values: ['al2023-ami-2023.*-x86_64'] },
          { Name: 'state', Values: ['available'] },
          { Name: 'architecture', Values: ['x86_64'] },
        ],
      }),
    );
    expect(Images).toHaveLength(4);
    expect(new Set(Images?.map((i) => i.OwnerId))).toEqual(new Set([AMAZON_OWNER]));
    expect(newest(Images)?.Name).toBe('al2023-ami-2023.8.20250908.0-kernel-6.1-x86_64');
    expect(newest(Images)?.RootDeviceName).toBe('/dev/xvda');
    expect(newest(Images)?.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId).toMatch(/^snap-[0-9a-f]{17}$/);
  });

  it('a loose pattern also catches the newer minimal image, so the pattern matters', async () => {
    const { Images } = await ec2.send(
      new DescribeImagesCommand({ Owners: ['amazon'], Filters: [{ Name: 'name', Values: ['al2023-ami-*-x86_64'] }] }),
    );
    expect(newest(Images)?.Name).toBe('al2023-ami-minimal-2023.8.20250915.0-kernel-6.1-x86_64');
  });

  it('selects the newest Ubuntu 24.04 image for an architecture', async () => {
    const { Images } = await ec2.send(
      new DescribeImagesCommand({
        Owners: [CANONICAL_OWNER],
        Filters: [
          { Name: 'name', Values: ['ubuntu/images/hvm-ssd*/ubuntu-noble-24.04-*-server-*'] },
          { Name: 'architecture', Values: ['arm64'] },
        ],
      }),
    );
    expect(Images).toHaveLength(4);
    expect(newest(Images)?.Name).toBe('ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-20250905');
    expect(newest(Images)?.ImageOwnerAlias).toBeUndefined();
  });

  it('gives every region its own image ids', async () => {
    const east = ec2Client(fake, 'us-east-1');
    const query = { Owners: [AMAZON_OWNER], Filters: [{ Name: 'name', Values: ['al2023-ami-2023.8.*-x86_64'] }] };
    const a = await ec2.send(new DescribeImagesCommand(query));
    const b = await east.send(new DescribeImagesCommand(query));
    expect(a.Images?.[0]?.Name).toBe(b.Images?.[0]?.Name);
    expect(a.Images?.[0]?.ImageId).not.toBe(b.Images?.[0]?.ImageId);
  });

  it('answers unknown and malformed ids with EC2 error codes', async () => {
    const missing = await rejection(ec2.send(new DescribeImagesCommand({ ImageIds: ['ami-0123456789abcdef0'] })));
    expect(missing.name).toBe('InvalidAMIID.NotFound');
    expect(missing.$metadata?.httpStatusCode).toBe(400);
    const bad = await rejection(ec2.send(new DescribeImagesCommand({ ImageIds: ['image-1'] })));
    expect(bad.name).toBe('InvalidAMIID.Malformed');
    const filter = await rejection(ec2.send(new DescribeImagesCommand({ Filters: [{ Name: 'colour', Values: ['x'] }] })));
    expect(filter.name).toBe('InvalidParameterValue');
  });

  it('pages with MaxResults and NextToken', async () => {
    const seen: string[] = [];
    let token: string | undefined;
    do {
      const page = await ec2.send(new DescribeImagesCommand({ Owners: [CANONICAL_OWNER], MaxResults: 5, NextToken: token }));
      expect(page.Images?.length).toBeLessThanOrEqual(5);
      seen.push(...(page.Images ?? []).map((i) => i.ImageId as string));
      token = page.NextToken;
    } while (token);
    expect(new Set(seen).size).toBe(9);
  });
});

describe('CreateImage', () => {
  it('snapshots every volume; the image goes pending -> available', async () => {
    const instanceId = await stoppedInstance();
    const snapshotting = gate();
    machines.gates.snapshot = snapshotting.promise;
    const { ImageId } = await ec2.send(
      new CreateImageCommand({
        InstanceId: instanceId,
        Name: 'sourcegraph-5.2.0-xs-abc123',
        TagSpecifications: [
          { ResourceType: 'image', Tags: [{ Key: 'kiln:run', Value: 'abc123' }] },
          { ResourceType: 'snapshot', Tags: [{ Key: 'kiln:run', Value: 'abc123' }] },
        ],
      }),
    );
    const pending = await ec2.send(new DescribeImagesCommand({ ImageIds: [ImageId as string] }));
    expect(pending.Images?.[0]?.State).toBe('pending');
    snapshotting.open();
    await waitUntilImageAvailable({ client: ec2, ...FAST_WAIT }, { ImageIds: [ImageId as string] });
    const { Images } = await ec2.send(new DescribeImagesCommand({ Owners: ['self'] }));
    expect(Images).toHaveLength(1);
    const image = Images?.[0] as Image;
    expect(image).toMatchObject({ ImageId, State: 'available', OwnerId: '123456789012', Public: false });
    expect(image.Tags).toEqual([{ Key: 'kiln:run', Value: 'abc123' }]);
    expect(image.BlockDeviceMappings?.map((m) => [m.DeviceName, m.Ebs?.VolumeSize])).toEqual([
      ['/dev/xvda', 20],
      ['/dev/sdf', 50],
    ]);
    const byTag = await ec2.send(
      new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'tag:kiln:run', Values: ['abc123'] }] }),
    );
    expect(byTag.Images?.map((i) => i.ImageId)).toEqual([ImageId]);
    const byKey = await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'tag-key', Values: ['other'] }] }));
    expect(byKey.Images).toEqual([]);
    const snaps = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] }));
    expect(snaps.Snapshots?.map((s) => s.State)).toEqual(['completed', 'completed']);
    expect(snaps.Snapshots?.every((s) => s.Tags?.[0]?.Key === 'kiln:run')).toBe(true);
    const snapshotted = machines.log.filter((l) => l.startsWith('snapshotDisk'));
    expect(snapshotted).toHaveLength(2);
  });

  it('marks the image failed when the machine backend cannot snapshot', async () => {
    const instanceId = await stoppedInstance();
    machines.snapshotDisk = async () => {
      throw new Error('disk full');
    };
    const { ImageId } = await ec2.send(new CreateImageCommand({ InstanceId: instanceId, Name: 'doomed' }));
    const err = await rejection(waitUntilImageAvailable({ client: ec2, ...FAST_WAIT }, { ImageIds: [ImageId as string] }));
    expect(err.name).toBe('Error');
    expect(err.message).toContain('FAILURE');
    const { Images } = await ec2.send(new DescribeImagesCommand({ ImageIds: [ImageId as string] }));
    expect(Images?.[0]?.State).toBe('failed');
    expect(Images?.[0]?.StateReason?.Message).toContain('disk full');
    expect(fake.state.backendErrors).toHaveLength(1);
  });

  it('rejects a duplicate name and an instance in the wrong state', async () => {
    const instanceId = await stoppedInstance();
    await ec2.send(new CreateImageCommand({ InstanceId: instanceId, Name: 'kiln image 1' }));
    const dup = await rejection(ec2.send(new CreateImageCommand({ InstanceId: instanceId, Name: 'kiln image 1' })));
    expect(dup.name).toBe('InvalidAMIName.Duplicate');
    machines.gates.start = gate().promise; // never boots: stays pending
    const run = await ec2.send(new RunInstancesCommand({ ImageId: await baseImageId(), InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 }));
    const pendingId = run.Instances?.[0]?.InstanceId as string;
    const wrong = await rejection(ec2.send(new CreateImageCommand({ InstanceId: pendingId, Name: 'kiln image 2' })));
    expect(wrong.name).toBe('IncorrectInstanceState');
  });

  it('keeps snapshots of a registered image; they can be deleted after deregistering', async () => {
    const instanceId = await stoppedInstance();
    const { ImageId } = await ec2.send(new CreateImageCommand({ InstanceId: instanceId, Name: 'to-deregister' }));
    await waitUntilImageAvailable({ client: ec2, ...FAST_WAIT }, { ImageIds: [ImageId as string] });
    const snaps = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] }));
    const snapshotId = snaps.Snapshots?.[0]?.SnapshotId as string;
    const inUse = await rejection(ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })));
    expect(inUse.name).toBe('InvalidSnapshot.InUse');
    await ec2.send(new DeregisterImageCommand({ ImageId }));
    expect(fake.state.liveResources('us-west-2').images).toEqual([]);
    for (const s of snaps.Snapshots ?? []) await ec2.send(new DeleteSnapshotCommand({ SnapshotId: s.SnapshotId }));
    expect(fake.state.liveResources('us-west-2').snapshots).toEqual([]);
    const gone = await rejection(ec2.send(new DescribeImagesCommand({ ImageIds: [ImageId as string] })));
    expect(gone.name).toBe('InvalidAMIID.NotFound');
  });
});

describe('CopyImage', () => {
  it('copies into the destination region with new ids and snapshots', async () => {
    const instanceId = await stoppedInstance();
    const { ImageId: sourceId } = await ec2.send(
      new CreateImageCommand({
        InstanceId: instanceId,
        Name: 'kiln-copy-source',
        TagSpecifications: [{ ResourceType: 'image', Tags: [{ Key: 'kiln:version', Value: '5.2.0' }] }],
      }),
    );
    await waitUntilImageAvailable({ client: ec2, ...FAST_WAIT }, { ImageIds: [sourceId as string] });
    const euClient = ec2Client(fake, 'eu-west-1');
    const copy = await euClient.send(
      new CopyImageCommand({ SourceRegion: 'us-west-2', SourceImageId: sourceId, Name: 'kiln-copy-source', CopyImageTags: true }),
    );
    expect(copy.ImageId).toMatch(/^ami-/);
    expect(copy.ImageId).not.toBe(sourceId);
    const notInSource = await rejection(ec2.send(new DescribeImagesCommand({ ImageIds: [copy.ImageId as string] })));
    expect(notInSource.name).toBe('InvalidAMIID.NotFound');
    await waitUntilImageAvailable({ client: euClient, ...FAST_WAIT }, { ImageIds: [copy.ImageId as string] });
    const { Images } = await euClient.send(new DescribeImagesCommand({ ImageIds: [copy.ImageId as string] }));
    expect(Images?.[0]).toMatchObject({ SourceImageId: sourceId, SourceImageRegion: 'us-west-2', State: 'available' });
    expect(Images?.[0]?.Tags).toEqual([{ Key: 'kiln:version', Value: '5.2.0' }]);
    const live = fake.state.liveResources('eu-west-1');
    expect(live.images).toEqual([copy.ImageId]);
    expect(live.snapshots).toHaveLength(2);
    const euSnapshots = new Set(live.snapshots);
    expect(Images?.[0]?.BlockDeviceMappings?.every((m) => euSnapshots.has(m.Ebs?.SnapshotId as string))).toBe(true);
  });

  it('is idempotent per ClientToken and needs an available, visible source', async () => {
    const euClient = ec2Client(fake, 'eu-west-1');
    const base = await baseImageId();
    const input = { SourceRegion: 'us-west-2', SourceImageId: base, Name: 'copied-base', ClientToken: 'tok-1' };
    const a = await euClient.send(new CopyImageCommand(input));
    const b = await euClient.send(new CopyImageCommand(input));
    expect(b.ImageId).toBe(a.ImageId);
    const mismatch = await rejection(euClient.send(new CopyImageCommand({ ...input, Name: 'other-name' })));
    expect(mismatch.name).toBe('IdempotentParameterMismatch');
    const missing = await rejection(
      euClient.send(new CopyImageCommand({ SourceRegion: 'us-west-2', SourceImageId: 'ami-0123456789abcdef0', Name: 'x-y-z' })),
    );
    expect(missing.name).toBe('InvalidAMIID.NotFound');
  });
});

describe('launch permissions', () => {
  it('adds and removes public and per-account launch permissions', async () => {
    const instanceId = await stoppedInstance();
    const { ImageId } = await ec2.send(new CreateImageCommand({ InstanceId: instanceId, Name: 'kiln-shared' }));
    await waitUntilImageAvailable({ client: ec2, ...FAST_WAIT }, { ImageIds: [ImageId as string] });
    await ec2.send(
      new ModifyImageAttributeCommand({
        ImageId,
        LaunchPermission: { Add: [{ Group: 'all' }, { UserId: '210987654321' }] },
      }),
    );
    const attr = await ec2.send(new DescribeImageAttributeCommand({ ImageId, Attribute: 'launchPermission' }));
    expect(attr.LaunchPermissions).toEqual([{ Group: 'all' }, { UserId: '210987654321' }]);
    const shown = await ec2.send(new DescribeImagesCommand({ ImageIds: [ImageId as string] }));
    expect(shown.Images?.[0]?.Public).toBe(true);
    const shared = await ec2.send(new DescribeImagesCommand({ ExecutableUsers: ['210987654321'] }));
    expect(shared.Images?.map((i) => i.ImageId)).toEqual([ImageId]);

    await ec2.send(new ModifyImageAttributeCommand({ ImageId, LaunchPermission: { Remove: [{ Group: 'all' }] } }));
    // The older flat form works too.
    await ec2.send(
      new ModifyImageAttributeCommand({ ImageId, Attribute: 'launchPermission', OperationType: 'remove', UserIds: ['210987654321'] }),
    );
    const after = await ec2.send(new DescribeImageAttributeCommand({ ImageId, Attribute: 'launchPermission' }));
    expect(after.LaunchPermissions).toEqual([]);
  });

  it('rejects bad items and images the caller does not own', async () => {
    const instanceId = await stoppedInstance();
    const { ImageId } = await ec2.send(new CreateImageCommand({ InstanceId: instanceId, Name: 'kiln-private' }));
    const badUser = await rejection(
      ec2.send(new ModifyImageAttributeCommand({ ImageId, LaunchPermission: { Add: [{ UserId: 'alice' }] } })),
    );
    expect(badUser.name).toBe('InvalidAMIAttributeItemValue');
    const notMine = await rejection(
      ec2.send(new ModifyImageAttributeCommand({ ImageId: await baseImageId(), LaunchPermission: { Add: [{ Group: 'all' }] } })),
    );
    expect(notMine.name).toBe('AuthFailure');
    expect(notMine.$metadata?.httpStatusCode).toBe(401);
  });
});
