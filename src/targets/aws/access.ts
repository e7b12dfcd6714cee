/**
 * Temporary access to the build VM: the per-build key pair (imported: the private key never leaves
 * this machine) and a security group in the plan's subnet's VPC (or the default VPC) letting tcp 22
 * in from one CIDR only: the plan's sshCidr, else this builder's public address as a host route.
 * A create whose response was lost and retried answers Duplicate; the resource is then adopted when
 * it carries this build's tag.
 */
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DescribeKeyPairsCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  ImportKeyPairCommand,
  type IpPermission,
} from '@aws-sdk/client-ec2';
import { KilnError } from '../../core/errors.js';
import type { CallScope, Ec2Api } from './clients.js';
import { codeOf } from './errors.js';
import { isOurs, tagSpecs } from './tagging.js';

export interface KeyPairSpec {
  name: string;
  publicKey: string;
  build: string;
  tags: Record<string, string>;
}

/** Imports the public key; returns the key pair's id. */
export async function importKeyPair(api: Ec2Api, scope: CallScope, spec: KeyPairSpec): Promise<string> {
  try {
    const out = await api.call('ImportKeyPair', scope, (c, o) =>
      c.send(
        new ImportKeyPairCommand({
          KeyName: spec.name,
          PublicKeyMaterial: Buffer.from(spec.publicKey, 'utf8'),
          TagSpecifications: tagSpecs(['key-pair'], spec.tags, spec.name),
        }),
        o,
      ),
    );
    if (!out.KeyPairId) throw new KilnError('CLOUD', `EC2 ImportKeyPair returned no id for ${spec.name}`, { resource: spec.name, region: scope.region, code: 'NoId' });
    return out.KeyPairId;
  } catch (err) {
    if (codeOf(err) !== 'InvalidKeyPair.Duplicate') throw err;
    const found = await api.call('DescribeKeyPairs', scope, (c, o) => c.send(new DescribeKeyPairsCommand({ KeyNames: [spec.name] }), o));
    const key = found.KeyPairs?.find((k) => k.KeyName === spec.name);
    if (!key?.KeyPairId || !isOurs(key.Tags, spec.build)) throw err;
    return key.KeyPairId;
  }
}

/** The VPC the build runs in: the plan's subnet's, else the region's default VPC. */
export async function buildVpc(api: Ec2Api, scope: CallScope, subnetId: string | undefined): Promise<string> {
  if (subnetId) return (await describeSubnet(api, scope, subnetId)).vpcId;
  const out = await api.call('DescribeVpcs', { ...scope, resource: 'default VPC' }, (c, o) =>
    c.send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] }), o),
  );
  const vpcId = out.Vpcs?.[0]?.VpcId;
  if (!vpcId) throw new KilnError('INPUT', `${scope.region} has no default VPC: set targets.aws.subnetId`, { field: 'targets.aws.subnetId', region: scope.region });
  return vpcId;
}

/** The plan's subnet: its VPC and availability zone. */
export async function describeSubnet(api: Ec2Api, scope: CallScope, subnetId: string): Promise<{ vpcId: string; zone?: string }> {
  const out = await api.call('DescribeSubnets', { ...scope, resource: subnetId }, (c, o) => c.send(new DescribeSubnetsCommand({ SubnetIds: [subnetId] }), o));
  const subnet = out.Subnets?.[0];
  if (!subnet?.VpcId) throw new KilnError('INPUT', `subnet ${subnetId} has no VPC in ${scope.region}`, { field: 'targets.aws.subnetId', resource: subnetId });
  return { vpcId: subnet.VpcId, zone: subnet.AvailabilityZone };
}

export interface SshGroupSpec {
  name: string;
  vpcId: string;
  build: string;
  tags: Record<string, string>;
}

/** Creates the (empty) security group; returns its id. */
export async function createSecurityGroup(api: Ec2Api, scope: CallScope, spec: SshGroupSpec): Promise<string> {
  try {
    const out = await api.call('CreateSecurityGroup', scope, (c, o) =>
      c.send(
        new CreateSecurityGroupCommand({
          GroupName: spec.name,
          Description: `kiln build ${spec.build}: SSH from the builder only`,
          VpcId: spec.vpcId,
          TagSpecifications: tagSpecs(['security-group'], spec.tags, spec.name),
        }),
        o,
      ),
    );
    if (!out.GroupId) throw new KilnError('CLOUD', `EC2 CreateSecurityGroup returned no id for ${spec.name}`, { resource: spec.name, region: scope.region, code: 'NoId' });
    return out.GroupId;
  } catch (err) {
    if (codeOf(err) !== 'InvalidGroup.Duplicate') throw err;
    const group = await findSecurityGroup(api, scope, spec.name, spec.vpcId);
    if (!group?.GroupId || !isOurs(group.Tags, spec.build)) throw err;
    return group.GroupId;
  }
}

export async function findSecurityGroup(api: Ec2Api, scope: CallScope, name: string, vpcId: string | undefined) {
  const filters = [{ Name: 'group-name', Values: [name] }, ...(vpcId ? [{ Name: 'vpc-id', Values: [vpcId] }] : [])];
  const out = await api.call('DescribeSecurityGroups', scope, (c, o) => c.send(new DescribeSecurityGroupsCommand({ Filters: filters }), o));
  return out.SecurityGroups?.[0];
}

/** Lets tcp 22 in from `cidr` (a group just created may not be visible yet: retried). */
export async function allowSsh(api: Ec2Api, scope: CallScope, groupId: string, cidr: string): Promise<void> {
  const description = 'kiln: SSH from the builder';
  const permission: IpPermission = cidr.includes(':')
    ? { IpProtocol: 'tcp', FromPort: 22, ToPort: 22, Ipv6Ranges: [{ CidrIpv6: cidr, Description: description }] }
    : { IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: cidr, Description: description }] };
  try {
    await api.callVisible('AuthorizeSecurityGroupIngress', { ...scope, resource: groupId }, (c, o) =>
      c.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: [permission] }), o),
    );
  } catch (err) {
    if (codeOf(err) !== 'InvalidPermission.Duplicate') throw err; // a retried call that had worked
  }
}
