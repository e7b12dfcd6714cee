import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DeleteKeyPairCommand,
  DeleteSecurityGroupCommand,
  DescribeImagesCommand,
  DescribeKeyPairsCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  ImportKeyPairCommand,
  RevokeSecurityGroupIngressCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  waitUntilInstanceTerminated,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AMAZON_OWNER, type Ec2Fake } from './index.js';
import { FAST_WAIT, RecordingMachines, ec2Client, ed25519PublicKey, gate, rejection, withFake } from './testkit.js';

let fake: Ec2Fake;
let ec2: EC2Client;
let machines: RecordingMachines;

beforeEach(async () => {
  machines = new RecordingMachines();
  fake = await withFake({ machines });
  ec2 = ec2Client(fake, 'us-east-1');
});
afterEach(async () => {
  expect(fake.unexpectedErrors).toEqual([]);
  await fake.close();
});

async function defaultVpcId(): Promise<string> {
  const { Vpcs } = await ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] }));
  return Vpcs?.[0]?.VpcId as string;
}

describe('default VPC and subnet', () => {
  it('exist in every region', async () => {
    const { Vpcs } = await ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] }));
    expect(Vpcs).toHaveLength(1);
    expect(Vpcs?.[0]).toMatchObject({ CidrBlock: '172.31.0.0/16', IsDefault: true, State: 'available' });
    const { Subnets } = await ec2.send(
      new DescribeSubnetsCommand({
        Filters: [
          { Name: 'vpc-id', Values: [Vpcs?.[0]?.VpcId as string] },
          { Name: 'default-for-az', Values: ['true'] },
        ],
      }),
    );
    expect(Subnets?.map((s) => s.AvailabilityZone)).toEqual(['us-east-1a', 'us-east-1b', 'us-east-1c']);
    expect(Subnets?.[0]).toMatchObject({ AvailabilityZone: 'us-east-1a', MapPublicIpOnLaunch: true, DefaultForAz: true });
    const other = await ec2Client(fake, 'ap-south-1').send(new DescribeVpcsCommand({}));
    expect(other.Vpcs?.[0]?.VpcId).not.toBe(Vpcs?.[0]?.VpcId);
  });

  it('rejects unknown VPC and subnet ids', async () => {
    const vpc = await rejection(ec2.send(new DescribeVpcsCommand({ VpcIds: ['vpc-0123456789abcdef0'] })));
    expect(vpc.name).toBe('InvalidVpcID.NotFound');
    const subnet = await rejection(ec2.send(new DescribeSubnetsCommand({ SubnetIds: ['subnet-0123456789abcdef0'] })));
    expect(subnet.name).toBe('InvalidSubnetID.NotFound');
  });
});

describe('key pairs', () => {
  it('imports an ed25519 key with its SHA-256 fingerprint, describes and deletes it', async () => {
    const publicKey = ed25519PublicKey();
    const blob = Buffer.from(publicKey.split(' ')[1] as string, 'base64');
    const imported = await ec2.send(
      new ImportKeyPairCommand({
        KeyName: 'kiln-abc-xs-key',
        PublicKeyMaterial: Buffer.from(publicKey),
        TagSpecifications: [{ ResourceType: 'key-pair', Tags: [{ Key: 'kiln:run', Value: 'abc' }] }],
      }),
    );
    expect(imported.KeyFingerprint).toBe(createHash('sha256').update(blob).digest('base64'));
    expect(imported.KeyPairId).toMatch(/^key-[0-9a-f]{17}$/);
    const { KeyPairs } = await ec2.send(
      new DescribeKeyPairsCommand({ Filters: [{ Name: 'tag:kiln:run', Values: ['abc'] }], IncludePublicKey: true }),
    );
    expect(KeyPairs).toHaveLength(1);
    expect(KeyPairs?.[0]).toMatchObject({ KeyName: 'kiln-abc-xs-key', KeyType: 'ed25519', KeyFingerprint: imported.KeyFingerprint });
    expect(KeyPairs?.[0]?.PublicKey?.startsWith(publicKey.split(' ').slice(0, 2).join(' '))).toBe(true);
    expect(KeyPairs?.[0]?.CreateTime).toBeInstanceOf(Date);

    const dup = await rejection(ec2.send(new ImportKeyPairCommand({ KeyName: 'kiln-abc-xs-key', PublicKeyMaterial: Buffer.from(publicKey) })));
    expect(dup.name).toBe('InvalidKeyPair.Duplicate');

    const deleted = await ec2.send(new DeleteKeyPairCommand({ KeyName: 'kiln-abc-xs-key' }));
    expect(deleted.Return).toBe(true);
    const gone = await rejection(ec2.send(new DescribeKeyPairsCommand({ KeyNames: ['kiln-abc-xs-key'] })));
    expect(gone.name).toBe('InvalidKeyPair.NotFound');
    // EC2 accepts deleting a name that does not exist.
    await ec2.send(new DeleteKeyPairCommand({ KeyName: 'kiln-abc-xs-key' }));
  });

  it('imports RSA keys with the MD5 fingerprint of the DER public key', async () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = publicKey.export({ format: 'jwk' });
    const mpint = (b64url: string) => {
      const raw = Buffer.from(b64url, 'base64url');
      return raw[0] !== undefined && raw[0] & 0x80 ? Buffer.concat([Buffer.from([0]), raw]) : raw;
    };
    const field = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, (b.length >> 8) & 255, b.length & 255]), b]);
    const blob = Buffer.concat([field(Buffer.from('ssh-rsa')), field(mpint(jwk.e as string)), field(mpint(jwk.n as string))]);
    const line = `ssh-rsa ${blob.toString('base64')} me@host`;
    const out = await ec2.send(new ImportKeyPairCommand({ KeyName: 'rsa-key', PublicKeyMaterial: Buffer.from(line) }));
    const der = publicKey.export({ type: 'spki', format: 'der' });
    const md5 = createHash('md5').update(der).digest('hex').match(/../g)?.join(':');
    expect(out.KeyFingerprint).toBe(md5);
  });

  it('rejects key material that is not an OpenSSH public key', async () => {
    const bad = await rejection(
      ec2.send(new ImportKeyPairCommand({ KeyName: 'bad', PublicKeyMaterial: Buffer.from('ssh-ed25519 bm9wZQ== x') })),
    );
    expect(bad.name).toBe('InvalidKeyPair.Format');
    expect(fake.state.liveResources('us-east-1').keyPairs).toEqual([]);
  });
});

describe('security groups', () => {
  it('creates a group, opens SSH for one address and describes it', async () => {
    const vpcId = await defaultVpcId();
    const { GroupId } = await ec2.send(
      new CreateSecurityGroupCommand({
        GroupName: 'kiln-abc-xs-ssh',
        Description: 'kiln build abc: SSH from the builder',
        VpcId: vpcId,
        TagSpecifications: [{ ResourceType: 'security-group', Tags: [{ Key: 'kiln:run', Value: 'abc' }] }],
      }),
    );
    const rule = { IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: '203.0.113.7/32', Description: 'builder' }] };
    const auth = await ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId, IpPermissions: [rule] }));
    expect(auth.Return).toBe(true);
    expect(auth.SecurityGroupRules?.[0]).toMatchObject({ GroupId, CidrIpv4: '203.0.113.7/32', FromPort: 22, IsEgress: false });
    const { SecurityGroups } = await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [GroupId as string] }));
    const group = SecurityGroups?.[0];
    expect(group).toMatchObject({ GroupName: 'kiln-abc-xs-ssh', VpcId: vpcId, Description: 'kiln build abc: SSH from the builder' });
    expect(group?.IpPermissions).toEqual([
      expect.objectContaining({ IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: '203.0.113.7/32', Description: 'builder' }] }),
    ]);
    expect(group?.IpPermissionsEgress?.[0]).toMatchObject({ IpProtocol: '-1', IpRanges: [{ CidrIp: '0.0.0.0/0' }] });
    expect(group?.Tags).toEqual([{ Key: 'kiln:run', Value: 'abc' }]);

    const again = await rejection(ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId, IpPermissions: [rule] })));
    expect(again.name).toBe('InvalidPermission.Duplicate');
    await ec2.send(new RevokeSecurityGroupIngressCommand({ GroupId, IpPermissions: [rule] }));
    const revoked = await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [GroupId as string] }));
    expect(revoked.SecurityGroups?.[0]?.IpPermissions).toEqual([]);
  });

  it('answers duplicates, unknown, malformed and default groups with EC2 errors', async () => {
    const vpcId = await defaultVpcId();
    await ec2.send(new CreateSecurityGroupCommand({ GroupName: 'twice', Description: 'x', VpcId: vpcId }));
    const dup = await rejection(ec2.send(new CreateSecurityGroupCommand({ GroupName: 'twice', Description: 'x', VpcId: vpcId })));
    expect(dup.name).toBe('InvalidGroup.Duplicate');
    const missing = await rejection(ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: ['sg-0123456789abcdef0'] })));
    expect(missing.name).toBe('InvalidGroup.NotFound');
    const deleteMissing = await rejection(ec2.send(new DeleteSecurityGroupCommand({ GroupId: 'sg-0123456789abcdef0' })));
    expect(deleteMissing.name).toBe('InvalidGroup.NotFound');
    const malformed = await rejection(ec2.send(new DeleteSecurityGroupCommand({ GroupId: 'group-1' })));
    expect(malformed.name).toBe('InvalidGroupId.Malformed');
    const byName = await ec2.send(new DescribeSecurityGroupsCommand({ GroupNames: ['default'] }));
    const cannot = await rejection(ec2.send(new DeleteSecurityGroupCommand({ GroupId: byName.SecurityGroups?.[0]?.GroupId })));
    expect(cannot.name).toBe('CannotDelete');
  });

  it('refuses to delete a group while a non-terminated instance uses it', async () => {
    const { GroupId } = await ec2.send(new CreateSecurityGroupCommand({ GroupName: 'in-use', Description: 'x' }));
    const { Images } = await ec2.send(
      new DescribeImagesCommand({ Owners: [AMAZON_OWNER], Filters: [{ Name: 'name', Values: ['al2023-ami-2023.8.*-x86_64'] }] }),
    );
    const run = await ec2.send(
      new RunInstancesCommand({ ImageId: Images?.[0]?.ImageId, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1, SecurityGroupIds: [GroupId as string] }),
    );
    const id = run.Instances?.[0]?.InstanceId as string;
    expect(run.Instances?.[0]?.SecurityGroups).toEqual([{ GroupId, GroupName: 'in-use' }]);
    const busy = await rejection(ec2.send(new DeleteSecurityGroupCommand({ GroupId })));
    expect(busy.name).toBe('DependencyViolation');
    const shutdown = gate();
    machines.gates.destroy = shutdown.promise;
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    const stillBusy = await rejection(ec2.send(new DeleteSecurityGroupCommand({ GroupId })));
    expect(stillBusy.name).toBe('DependencyViolation');
    shutdown.open();
    await waitUntilInstanceTerminated({ client: ec2, ...FAST_WAIT }, { InstanceIds: [id] });
    const deleted = await ec2.send(new DeleteSecurityGroupCommand({ GroupId }));
    expect(deleted.Return).toBe(true);
    expect(fake.state.liveResources('us-east-1').securityGroups).toEqual([]);
  });
});
