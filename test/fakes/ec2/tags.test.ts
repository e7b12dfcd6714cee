import {
  CopyImageCommand,
  CreateImageCommand,
  CreateSecurityGroupCommand,
  CreateTagsCommand,
  DeleteKeyPairCommand,
  DeleteSecurityGroupCommand,
  DeleteSnapshotCommand,
  DeleteTagsCommand,
  DeleteVolumeCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  DescribeTagsCommand,
  DescribeVolumesCommand,
  ImportKeyPairCommand,
  RunInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  waitUntilImageAvailable,
  waitUntilInstanceRunning,
  waitUntilInstanceStopped,
  waitUntilInstanceTerminated,
  type EC2Client,
  type Tag,
} from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AMAZON_OWNER, type Ec2Fake } from './index.js';
import { FAST_WAIT, ec2Client, ed25519PublicKey, rejection, withFake } from './testkit.js';

let fake: Ec2Fake;
let ec2: EC2Client;

beforeEach(async () => {
  fake = await withFake();
  ec2 = ec2Client(fake, 'us-west-2');
});
afterEach(async () => {
  expect(fake.unexpectedErrors).toEqual([]);
  await fake.close();
});

const RUN_TAGS: Tag[] = [
  { Key: 'kiln:run', Value: 'abc123' },
  { Key: 'kiln:build', Value: 'abc123-aws-xs' },
];

async function baseImage(client: EC2Client = ec2): Promise<string> {
  const { Images } = await client.send(
    new DescribeImagesCommand({ Owners: [AMAZON_OWNER], Filters: [{ Name: 'name', Values: ['al2023-ami-2023.8.*-x86_64'] }] }),
  );
  return Images?.[0]?.ImageId as string;
}

async function runningInstance(tags: Tag[] = RUN_TAGS, extra: Record<string, unknown> = {}): Promise<string> {
  const run = await ec2.send(
    new RunInstancesCommand({
      ImageId: await baseImage(),
      InstanceType: 't3.micro',
      MinCount: 1,
      MaxCount: 1,
      TagSpecifications: [
        { ResourceType: 'instance', Tags: tags },
        { ResourceType: 'volume', Tags: tags },
      ],
      ...extra,
    }),
  );
  const id = run.Instances?.[0]?.InstanceId as string;
  await waitUntilInstanceRunning({ client: ec2, ...FAST_WAIT }, { InstanceIds: [id] });
  return id;
}

describe('tags', () => {
  it('creates, describes and deletes tags on several resources', async () => {
    const instanceId = await runningInstance([{ Key: 'Name', Value: 'x' }]);
    const { Volumes } = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: [instanceId] }] }));
    const volumeId = Volumes?.[0]?.VolumeId as string;
    await ec2.send(new CreateTagsCommand({ Resources: [instanceId, volumeId], Tags: [{ Key: 'kiln:run', Value: 'r9' }, { Key: 'owner', Value: 'me' }] }));
    const byKey = await ec2.send(new DescribeTagsCommand({ Filters: [{ Name: 'key', Values: ['kiln:run'] }] }));
    expect(byKey.Tags?.map((t) => [t.ResourceType, t.ResourceId, t.Value]).sort()).toEqual(
      [
        ['instance', instanceId, 'r9'],
        ['volume', volumeId, 'r9'],
      ].sort(),
    );
    const volumesOnly = await ec2.send(
      new DescribeTagsCommand({ Filters: [{ Name: 'resource-type', Values: ['volume'] }, { Name: 'key', Values: ['owner'] }] }),
    );
    expect(volumesOnly.Tags?.map((t) => t.ResourceId)).toEqual([volumeId]);
    await ec2.send(new DeleteTagsCommand({ Resources: [instanceId], Tags: [{ Key: 'owner', Value: 'someone-else' }] }));
    await ec2.send(new DeleteTagsCommand({ Resources: [volumeId], Tags: [{ Key: 'owner' }] }));
    const left = await ec2.send(new DescribeTagsCommand({ Filters: [{ Name: 'key', Values: ['owner'] }] }));
    expect(left.Tags?.map((t) => t.ResourceId)).toEqual([instanceId]);
    const byResource = await ec2.send(new DescribeTagsCommand({ Filters: [{ Name: 'resource-id', Values: [volumeId] }] }));
    expect(byResource.Tags?.map((t) => t.Key).sort()).toEqual(['Name', 'kiln:run']);
  });

  it('answers unknown resources and reserved keys with EC2 errors', async () => {
    const unknown = await rejection(ec2.send(new CreateTagsCommand({ Resources: ['i-0123456789abcdef0'], Tags: [{ Key: 'a', Value: 'b' }] })));
    expect(unknown.name).toBe('InvalidInstanceID.NotFound');
    const badId = await rejection(ec2.send(new CreateTagsCommand({ Resources: ['thing-1'], Tags: [{ Key: 'a', Value: 'b' }] })));
    expect(badId.name).toBe('InvalidID');
    const sg = await ec2.send(new CreateSecurityGroupCommand({ GroupName: 'g', Description: 'g' }));
    const reserved = await rejection(ec2.send(new CreateTagsCommand({ Resources: [sg.GroupId as string], Tags: [{ Key: 'aws:x', Value: 'b' }] })));
    expect(reserved.name).toBe('InvalidParameterValue');
  });
});

describe('volumes and snapshots', () => {
  it('filters volumes and snapshots by tag and attachment', async () => {
    const instanceId = await runningInstance(RUN_TAGS, {
      BlockDeviceMappings: [{ DeviceName: '/dev/sdf', Ebs: { VolumeSize: 40, VolumeType: 'gp3' } }],
    });
    const tagged = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'tag:kiln:run', Values: ['abc123'] }] }));
    expect(tagged.Volumes?.map((v) => v.Size).sort()).toEqual([40, 8]);
    const data = await ec2.send(
      new DescribeVolumesCommand({
        Filters: [
          { Name: 'attachment.instance-id', Values: [instanceId] },
          { Name: 'attachment.device', Values: ['/dev/sdf'] },
        ],
      }),
    );
    expect(data.Volumes?.[0]).toMatchObject({ Size: 40, State: 'in-use' });
    const missing = await rejection(ec2.send(new DescribeVolumesCommand({ VolumeIds: ['vol-0123456789abcdef0'] })));
    expect(missing.name).toBe('InvalidVolume.NotFound');
    const noSnap = await rejection(ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: ['snap-0123456789abcdef0'] })));
    expect(noSnap.name).toBe('InvalidSnapshot.NotFound');
    const own = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] }));
    expect(own.Snapshots).toEqual([]);
  });
});

describe('sweeping a run by its kiln:run tag', () => {
  it('finds and deletes everything a run left in two regions', async () => {
    const eu = ec2Client(fake, 'eu-central-1');
    await ec2.send(
      new ImportKeyPairCommand({
        KeyName: 'kiln-abc123-xs-key',
        PublicKeyMaterial: Buffer.from(ed25519PublicKey()),
        TagSpecifications: [{ ResourceType: 'key-pair', Tags: RUN_TAGS }],
      }),
    );
    const sg = await ec2.send(
      new CreateSecurityGroupCommand({
        GroupName: 'kiln-abc123-xs-ssh',
        Description: 'ssh',
        TagSpecifications: [{ ResourceType: 'security-group', Tags: RUN_TAGS }],
      }),
    );
    const instanceId = await runningInstance(RUN_TAGS, {
      KeyName: 'kiln-abc123-xs-key',
      SecurityGroupIds: [sg.GroupId],
      BlockDeviceMappings: [{ DeviceName: '/dev/sdf', Ebs: { VolumeSize: 20, DeleteOnTermination: false } }],
    });
    await ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId] }));
    await waitUntilInstanceStopped({ client: ec2, ...FAST_WAIT }, { InstanceIds: [instanceId] });
    const image = await ec2.send(
      new CreateImageCommand({
        InstanceId: instanceId,
        Name: 'app-1.0.0-xs-abc123',
        TagSpecifications: [
          { ResourceType: 'image', Tags: RUN_TAGS },
          { ResourceType: 'snapshot', Tags: RUN_TAGS },
        ],
      }),
    );
    await waitUntilImageAvailable({ client: ec2, ...FAST_WAIT }, { ImageIds: [image.ImageId as string] });
    const copy = await eu.send(
      new CopyImageCommand({
        SourceRegion: 'us-west-2',
        SourceImageId: image.ImageId,
        Name: 'app-1.0.0-xs-abc123',
        TagSpecifications: [
          { ResourceType: 'image', Tags: RUN_TAGS },
          { ResourceType: 'snapshot', Tags: RUN_TAGS },
        ],
      }),
    );
    await waitUntilImageAvailable({ client: eu, ...FAST_WAIT }, { ImageIds: [copy.ImageId as string] });
    expect(Object.keys(fake.state.allLiveResources()).sort()).toEqual(['eu-central-1', 'us-west-2']);

    for (const client of [ec2, eu]) await sweep(client, 'abc123');

    expect(fake.state.allLiveResources()).toEqual({});
  });
});

/** What `kiln cleanup` will do: find by tag, delete in dependency order. */
async function sweep(client: EC2Client, runId: string): Promise<void> {
  const { Tags } = await client.send(
    new DescribeTagsCommand({ Filters: [{ Name: 'key', Values: ['kiln:run'] }, { Name: 'value', Values: [runId] }] }),
  );
  const ids = (type: string) => (Tags ?? []).filter((t) => t.ResourceType === type).map((t) => t.ResourceId as string);
  const instances = ids('instance');
  if (instances.length) {
    await client.send(new TerminateInstancesCommand({ InstanceIds: instances }));
    await waitUntilInstanceTerminated({ client, ...FAST_WAIT }, { InstanceIds: instances });
  }
  const { Volumes } = await client.send(new DescribeVolumesCommand({ Filters: [{ Name: 'tag:kiln:run', Values: [runId] }] }));
  for (const v of Volumes ?? []) await client.send(new DeleteVolumeCommand({ VolumeId: v.VolumeId }));
  for (const id of ids('image')) await client.send(new DeregisterImageCommand({ ImageId: id }));
  for (const id of ids('snapshot')) await client.send(new DeleteSnapshotCommand({ SnapshotId: id }));
  for (const id of ids('security-group')) await client.send(new DeleteSecurityGroupCommand({ GroupId: id }));
  for (const id of ids('key-pair')) await client.send(new DeleteKeyPairCommand({ KeyPairId: id }));
}
