import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  DeleteVolumeCommand,
  GetConsoleOutputCommand,
  ImportKeyPairCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  waitUntilInstanceExists,
  waitUntilInstanceRunning,
  waitUntilInstanceStopped,
  waitUntilInstanceTerminated,
  type EC2Client,
  type RunInstancesCommandInput,
  type _InstanceType,
} from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AMAZON_OWNER, CANONICAL_OWNER, type Ec2Fake } from './index.js';
import { FAST_WAIT, RecordingMachines, ec2Client, ed25519PublicKey, gate, rejection, withFake } from './testkit.js';

let fake: Ec2Fake;
let ec2: EC2Client;
let machines: RecordingMachines;

beforeEach(async () => {
  machines = new RecordingMachines();
  fake = await withFake({ machines });
  ec2 = ec2Client(fake, 'us-east-2');
});
afterEach(async () => {
  expect(fake.unexpectedErrors).toEqual([]);
  expect(fake.state.backendErrors).toEqual([]);
  await fake.close();
});

async function imageId(owner = AMAZON_OWNER, name = 'al2023-ami-2023.8.*-kernel-6.1-x86_64'): Promise<string> {
  const { Images } = await ec2.send(new DescribeImagesCommand({ Owners: [owner], Filters: [{ Name: 'name', Values: [name] }] }));
  expect(Images).toHaveLength(1);
  return Images?.[0]?.ImageId as string;
}

async function describe1(id: string) {
  const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  return out.Reservations?.[0]?.Instances?.[0];
}

const running = (id: string) => waitUntilInstanceRunning({ client: ec2, ...FAST_WAIT }, { InstanceIds: [id] });

describe('RunInstances', () => {
  it('launches with key, block devices and tags; pending -> running with a loopback public IP', async () => {
    const publicKey = ed25519PublicKey();
    await ec2.send(new ImportKeyPairCommand({ KeyName: 'kiln-abc-key', PublicKeyMaterial: Buffer.from(publicKey) }));
    const run = await ec2.send(
      new RunInstancesCommand({
        ImageId: await imageId(),
        InstanceType: 'm6i.xlarge',
        KeyName: 'kiln-abc-key',
        MinCount: 1,
        MaxCount: 1,
        BlockDeviceMappings: [
          { DeviceName: '/dev/xvda', Ebs: { VolumeSize: 30, VolumeType: 'gp3', Encrypted: true } },
          {
            DeviceName: '/dev/sdf',
            Ebs: { VolumeSize: 100, VolumeType: 'gp3', Iops: 6000, Throughput: 250, DeleteOnTermination: false, Encrypted: true, KmsKeyId: 'alias/kiln' },
          },
        ],
        TagSpecifications: [
          { ResourceType: 'instance', Tags: [{ Key: 'Name', Value: 'kiln-abc-builder' }, { Key: 'kiln:run', Value: 'abc' }] },
          { ResourceType: 'volume', Tags: [{ Key: 'kiln:run', Value: 'abc' }] },
        ],
      }),
    );
    const launched = run.Instances?.[0];
    expect(launched?.State).toEqual({ Code: 0, Name: 'pending' });
    expect(launched?.PublicIpAddress).toBeUndefined();
    const id = launched?.InstanceId as string;
    await running(id);
    const instance = await describe1(id);
    expect(instance?.State).toEqual({ Code: 16, Name: 'running' });
    expect(instance?.PublicIpAddress).toMatch(/^127\.0\.10\.\d+$/);
    expect(instance?.KeyName).toBe('kiln-abc-key');
    expect(instance?.Tags).toEqual([
      { Key: 'Name', Value: 'kiln-abc-builder' },
      { Key: 'kiln:run', Value: 'abc' },
    ]);
    const { Volumes } = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: [id] }] }));
    const byDevice = Object.fromEntries((Volumes ?? []).map((v) => [v.Attachments?.[0]?.Device, v]));
    expect(byDevice['/dev/xvda']).toMatchObject({ Size: 30, VolumeType: 'gp3', Iops: 3000, Throughput: 125, Encrypted: true, State: 'in-use' });
    expect(byDevice['/dev/xvda']?.KmsKeyId).toMatch(/^arn:aws:kms:us-east-2:/);
    expect(byDevice['/dev/sdf']).toMatchObject({ Size: 100, Iops: 6000, Throughput: 250, KmsKeyId: 'alias/kiln' });
    expect(byDevice['/dev/sdf']?.Attachments?.[0]?.DeleteOnTermination).toBe(false);
    expect(byDevice['/dev/sdf']?.Tags).toEqual([{ Key: 'kiln:run', Value: 'abc' }]);
    // The machine backend saw the disks (root from the image's snapshot) and the key.
    const spec = machines.specs[0];
    expect(spec).toMatchObject({ id, sshUser: 'ec2-user', sshPublicKey: `${publicKey.split(' ').slice(0, 2).join(' ')} kiln-abc-key`, cpus: 4, memoryMiB: 16384 });
    expect(spec?.address).toBe(instance?.PublicIpAddress);
    expect(spec?.diskIds).toEqual([byDevice['/dev/xvda']?.VolumeId, byDevice['/dev/sdf']?.VolumeId]);
    expect(machines.log.filter((l) => l.startsWith('createDisk'))).toEqual([
      expect.stringMatching(/^createDisk vol-\w+ 30 snap-\w+$/),
      expect.stringMatching(/^createDisk vol-\w+ 100 -$/),
    ]);
  });

  it('gives every instance its own address and honours Min/MaxCount', async () => {
    const run = await ec2.send(new RunInstancesCommand({ ImageId: await imageId(), InstanceType: 't3.small', MinCount: 1, MaxCount: 3 }));
    const ids = run.Instances?.map((i) => i.InstanceId as string) ?? [];
    expect(ids).toHaveLength(3);
    expect(run.Instances?.map((i) => i.AmiLaunchIndex)).toEqual([0, 1, 2]);
    await waitUntilInstanceRunning({ client: ec2, ...FAST_WAIT }, { InstanceIds: ids });
    const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: ids }));
    const ips = out.Reservations?.[0]?.Instances?.map((i) => i.PublicIpAddress);
    expect(new Set(ips).size).toBe(3);
  });

  it('returns the same reservation for a repeated ClientToken', async () => {
    const input: RunInstancesCommandInput = {
      ImageId: await imageId(),
      InstanceType: 't3.micro',
      MinCount: 1,
      MaxCount: 1,
      ClientToken: 'kiln-abc-builder',
    };
    const a = await ec2.send(new RunInstancesCommand(input));
    const b = await ec2.send(new RunInstancesCommand(input));
    expect(b.ReservationId).toBe(a.ReservationId);
    expect(b.Instances?.[0]?.InstanceId).toBe(a.Instances?.[0]?.InstanceId);
    expect(fake.state.liveResources('us-east-2').instances).toHaveLength(1);
    const mismatch = await rejection(ec2.send(new RunInstancesCommand({ ...input, InstanceType: 't3.large' })));
    expect(mismatch.name).toBe('IdempotentParameterMismatch');
  });

  it('uses the Ubuntu login for Ubuntu images', async () => {
    const ubuntu = await imageId(CANONICAL_OWNER, 'ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250905');
    await ec2.send(new RunInstancesCommand({ ImageId: ubuntu, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 }));
    await expect.poll(() => machines.specs[0]?.sshUser).toBe('ubuntu');
  });

  it('answers bad requests with EC2 error codes', async () => {
    const base: RunInstancesCommandInput = { ImageId: await imageId(), InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 };
    const cases: Array<[Partial<RunInstancesCommandInput>, string]> = [
      [{ ImageId: 'ami-0123456789abcdef0' }, 'InvalidAMIID.NotFound'],
      [{ KeyName: 'nope' }, 'InvalidKeyPair.NotFound'],
      [{ InstanceType: 'q9.huge' as _InstanceType }, 'InvalidParameterValue'],
      [{ InstanceType: 'm7g.large' }, 'InvalidParameterValue'],
      [{ SecurityGroupIds: ['sg-0123456789abcdef0'] }, 'InvalidGroup.NotFound'],
      [{ SubnetId: 'subnet-0123456789abcdef0' }, 'InvalidSubnetID.NotFound'],
      [{ BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeSize: 4 } }] }, 'InvalidBlockDeviceMapping'],
      [{ BlockDeviceMappings: [{ DeviceName: '/dev/sdf', Ebs: { VolumeSize: 10, VolumeType: 'gp2', Iops: 500 } }] }, 'InvalidParameterCombination'],
      [{ BlockDeviceMappings: [{ DeviceName: '/dev/sdf', Ebs: { VolumeSize: 10, KmsKeyId: 'alias/x' } }] }, 'InvalidParameterDependency'],
    ];
    for (const [change, code] of cases) {
      const err = await rejection(ec2.send(new RunInstancesCommand({ ...base, ...change })));
      expect([JSON.stringify(change), err.name]).toEqual([JSON.stringify(change), code]);
    }
    expect(fake.state.liveResources('us-east-2')).toMatchObject({ instances: [], volumes: [] });
  });
});

describe('the instance state machine', () => {
  it('stops, starts and terminates, with a new address after a restart', async () => {
    const boot = gate();
    machines.gates.start = boot.promise;
    const run = await ec2.send(new RunInstancesCommand({ ImageId: await imageId(), InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 }));
    const id = run.Instances?.[0]?.InstanceId as string;
    const early = await rejection(ec2.send(new StopInstancesCommand({ InstanceIds: [id] })));
    expect(early.name).toBe('IncorrectInstanceState');
    boot.open();
    await running(id);
    const firstIp = (await describe1(id))?.PublicIpAddress;

    const halt = gate();
    machines.gates.stop = halt.promise;
    const stop = await ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
    expect(stop.StoppingInstances?.[0]).toMatchObject({
      PreviousState: { Code: 16, Name: 'running' },
      CurrentState: { Code: 64, Name: 'stopping' },
    });
    const startWhileStopping = await rejection(ec2.send(new StartInstancesCommand({ InstanceIds: [id] })));
    expect(startWhileStopping.name).toBe('IncorrectInstanceState');
    halt.open();
    await waitUntilInstanceStopped({ client: ec2, ...FAST_WAIT }, { InstanceIds: [id] });
    const stopped = await describe1(id);
    expect(stopped?.State).toEqual({ Code: 80, Name: 'stopped' });
    expect(stopped?.PublicIpAddress).toBeUndefined();
    expect(stopped?.StateReason?.Code).toBe('Client.UserInitiatedShutdown');

    const start = await ec2.send(new StartInstancesCommand({ InstanceIds: [id] }));
    expect(start.StartingInstances?.[0]?.CurrentState?.Name).toBe('pending');
    await running(id);
    const secondIp = (await describe1(id))?.PublicIpAddress;
    expect(secondIp).toMatch(/^127\.0\.10\./);
    expect(secondIp).not.toBe(firstIp);

    const term = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect(term.TerminatingInstances?.[0]?.CurrentState).toEqual({ Code: 32, Name: 'shutting-down' });
    await waitUntilInstanceTerminated({ client: ec2, ...FAST_WAIT }, { InstanceIds: [id] });
    expect((await describe1(id))?.State?.Name).toBe('terminated');
    const again = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect(again.TerminatingInstances?.[0]?.PreviousState?.Name).toBe('terminated');
    const restart = await rejection(ec2.send(new StartInstancesCommand({ InstanceIds: [id] })));
    expect(restart.name).toBe('IncorrectInstanceState');
    expect(machines.log.filter((l) => /^(startMachine|stopMachine|destroyMachine)/.test(l)).map((l) => l.split(' ')[0])).toEqual([
      'startMachine',
      'stopMachine',
      'startMachine',
      'destroyMachine',
    ]);
  });

  it('reaches stopped only once the machine backend has stopped the machine', async () => {
    const halt = gate();
    machines.gates.stop = halt.promise;
    fake.transitions.setDelays({ 'instance.stopped': 0 });
    const run = await ec2.send(new RunInstancesCommand({ ImageId: await imageId(), InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 }));
    const id = run.Instances?.[0]?.InstanceId as string;
    await running(id);
    await ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
    await expect.poll(() => machines.log.includes(`stopMachine ${id}`)).toBe(true);
    // With a zero delay the state would flip on the next tick; it holds while the backend does.
    for (let i = 0; i < 3; i++) expect((await describe1(id))?.State?.Name).toBe('stopping');
    halt.open();
    await waitUntilInstanceStopped({ client: ec2, ...FAST_WAIT }, { InstanceIds: [id] });
  });

  it('deletes DeleteOnTermination volumes and detaches the others', async () => {
    const run = await ec2.send(
      new RunInstancesCommand({
        ImageId: await imageId(),
        InstanceType: 't3.micro',
        MinCount: 1,
        MaxCount: 1,
        BlockDeviceMappings: [{ DeviceName: '/dev/sdf', Ebs: { VolumeSize: 10, DeleteOnTermination: false } }],
      }),
    );
    const id = run.Instances?.[0]?.InstanceId as string;
    await running(id);
    const { Volumes } = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: [id] }] }));
    expect(Volumes).toHaveLength(2);
    const data = Volumes?.find((v) => v.Attachments?.[0]?.Device === '/dev/sdf')?.VolumeId as string;
    const inUse = await rejection(ec2.send(new DeleteVolumeCommand({ VolumeId: data })));
    expect(inUse.name).toBe('VolumeInUse');
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    await waitUntilInstanceTerminated({ client: ec2, ...FAST_WAIT }, { InstanceIds: [id] });
    const left = await ec2.send(new DescribeVolumesCommand({}));
    expect(left.Volumes?.map((v) => [v.VolumeId, v.State, v.Attachments])).toEqual([[data, 'available', []]]);
    await ec2.send(new DeleteVolumeCommand({ VolumeId: data }));
    expect(fake.state.liveResources('us-east-2').volumes).toEqual([]);
    expect(machines.log).toContain(`deleteDisk ${data}`);
  });

  it('filters by state and tag, and rejects unknown ids', async () => {
    const base: RunInstancesCommandInput = { ImageId: await imageId(), InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 };
    const tagged = await ec2.send(
      new RunInstancesCommand({ ...base, TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'kiln:run', Value: 'r1' }] }] }),
    );
    await ec2.send(new RunInstancesCommand(base));
    const id = tagged.Instances?.[0]?.InstanceId as string;
    await running(id);
    const byTag = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: 'tag:kiln:run', Values: ['r*'] },
          { Name: 'instance-state-name', Values: ['running', 'pending'] },
        ],
      }),
    );
    expect(byTag.Reservations?.flatMap((r) => r.Instances?.map((i) => i.InstanceId))).toEqual([id]);
    const missing = await rejection(ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-0123456789abcdef0'] })));
    expect(missing.name).toBe('InvalidInstanceID.NotFound');
    const malformed = await rejection(ec2.send(new DescribeInstancesCommand({ InstanceIds: ['instance-1'] })));
    expect(malformed.name).toBe('InvalidInstanceID.Malformed');
  });

  it('terminates an instance whose machine fails to boot, with the reason', async () => {
    machines.startMachine = async () => {
      throw new Error('qemu exited with status 1');
    };
    const run = await ec2.send(new RunInstancesCommand({ ImageId: await imageId(), InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 }));
    const id = run.Instances?.[0]?.InstanceId as string;
    const err = await rejection(running(id));
    expect(err.message).toContain('FAILURE');
    await waitUntilInstanceTerminated({ client: ec2, ...FAST_WAIT }, { InstanceIds: [id] });
    expect((await describe1(id))?.StateReason).toEqual({ Code: 'Server.InternalError', Message: 'Server.InternalError: qemu exited with status 1' });
    expect(fake.state.liveResources('us-east-2')).toMatchObject({ instances: [], volumes: [] });
    expect(fake.state.backendErrors.map((e) => e.context)).toEqual([`launch ${id}`]);
    fake.state.backendErrors.length = 0;
  });

  it('returns the console output base64-encoded', async () => {
    const run = await ec2.send(new RunInstancesCommand({ ImageId: await imageId(), InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 }));
    const id = run.Instances?.[0]?.InstanceId as string;
    await running(id);
    const out = await ec2.send(new GetConsoleOutputCommand({ InstanceId: id, Latest: true }));
    expect(Buffer.from(out.Output as string, 'base64').toString('utf8')).toBe(`Booting ${id}\nlogin: \n`);
  });
});

describe('eventual consistency', () => {
  it('hides a new instance for a window; the SDK waiters ride it out', async () => {
    await fake.close();
    fake = await withFake({ machines, instanceNotFoundWindowMs: 150 });
    ec2 = ec2Client(fake, 'us-east-2');
    const run = await ec2.send(new RunInstancesCommand({ ImageId: await imageId(), InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 }));
    const id = run.Instances?.[0]?.InstanceId as string;
    const hidden = await rejection(ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] })));
    expect(hidden.name).toBe('InvalidInstanceID.NotFound');
    await waitUntilInstanceExists({ client: ec2, ...FAST_WAIT }, { InstanceIds: [id] });
    await running(id);
    expect(fake.calls.some((c) => c.action === 'DescribeInstances' && c.errorCode === 'InvalidInstanceID.NotFound')).toBe(true);
  });
});
