/**
 * Networking: DescribeVpcs, DescribeSubnets (the default VPC and subnet of each region) and
 * security groups: Create, AuthorizeIngress, RevokeIngress, Describe, Delete.
 */
import { Ec2Error, notFound } from '../errors.js';
import { applyFilters, paginate, type FilterFields } from '../filters.js';
import type { IpPermission, RegionState, SecurityGroupRecord, SubnetRecord, VpcRecord } from '../model.js';
import type { Params } from '../query.js';
import type { XmlObject } from '../xml.js';
import { copyTags, tagSetXml, tagSpecifications, type ActionContext, type ActionHandler } from './common.js';

function defaultVpc(region: RegionState): VpcRecord {
  const vpc = [...region.vpcs.values()].find((v) => v.isDefault);
  if (!vpc) throw new Ec2Error('VPCIdNotSpecified', 'No default VPC for this user');
  return vpc;
}

const VPC_FILTERS: FilterFields<VpcRecord> = {
  'vpc-id': (v) => v.id,
  'is-default': (v) => v.isDefault,
  state: () => 'available',
  cidr: (v) => v.cidrBlock,
  'cidr-block-association.cidr-block': (v) => v.cidrBlock,
};

const describeVpcs: ActionHandler = ({ state, region, params }) => {
  const ids = params.strings('VpcId');
  const missing = ids.filter((id) => !region.vpcs.has(id));
  if (missing.length) throw notFound('InvalidVpcID.NotFound', 'vpc ID', missing);
  let vpcs = [...region.vpcs.values()].filter((v) => !ids.length || ids.includes(v.id));
  vpcs = applyFilters(vpcs, params.structs('Filter'), { ...VPC_FILTERS, 'owner-id': () => state.accountId });
  return {
    vpcSet: vpcs.map((v) => ({
      vpcId: v.id,
      ownerId: state.accountId,
      state: 'available',
      cidrBlock: v.cidrBlock,
      cidrBlockAssociationSet: [
        { associationId: `vpc-cidr-assoc-${v.id.slice(4)}`, cidrBlock: v.cidrBlock, cidrBlockState: { state: 'associated' } },
      ],
      dhcpOptionsId: `dopt-${v.id.slice(4)}`,
      instanceTenancy: 'default',
      isDefault: v.isDefault,
      tagSet: tagSetXml(v.tags),
    })),
  };
};

const SUBNET_FILTERS: FilterFields<SubnetRecord> = {
  'subnet-id': (s) => s.id,
  'vpc-id': (s) => s.vpcId,
  'default-for-az': (s) => s.defaultForAz,
  defaultForAz: (s) => s.defaultForAz,
  'availability-zone': (s) => s.availabilityZone,
  availabilityZone: (s) => s.availabilityZone,
  'cidr-block': (s) => s.cidrBlock,
  cidrBlock: (s) => s.cidrBlock,
  'map-public-ip-on-launch': () => true,
  state: () => 'available',
};

const describeSubnets: ActionHandler = ({ state, region, params }) => {
  const ids = params.strings('SubnetId');
  const missing = ids.filter((id) => !region.subnets.has(id));
  if (missing.length) throw notFound('InvalidSubnetID.NotFound', 'subnet ID', missing);
  let subnets = [...region.subnets.values()].filter((s) => !ids.length || ids.includes(s.id));
  subnets = applyFilters(subnets, params.structs('Filter'), { ...SUBNET_FILTERS, 'owner-id': () => state.accountId });
  return {
    subnetSet: subnets.map((s) => ({
      subnetId: s.id,
      subnetArn: `arn:aws:ec2:${region.name}:${state.accountId}:subnet/${s.id}`,
      state: 'available',
      vpcId: s.vpcId,
      cidrBlock: s.cidrBlock,
      availableIpAddressCount: 4091,
      availabilityZone: s.availabilityZone,
      defaultForAz: s.defaultForAz,
      mapPublicIpOnLaunch: true,
      ownerId: state.accountId,
      tagSet: tagSetXml(s.tags),
    })),
  };
};

function sgXml(ctx: ActionContext, g: SecurityGroupRecord): XmlObject {
  return {
    ownerId: ctx.state.accountId,
    groupId: g.id,
    groupName: g.name,
    groupDescription: g.description,
    vpcId: g.vpcId,
    ipPermissions: permissionsXml(ctx, g.ingress),
    ipPermissionsEgress: permissionsXml(ctx, g.egress),
    tagSet: tagSetXml(g.tags),
    securityGroupArn: `arn:aws:ec2:${ctx.region.name}:${ctx.state.accountId}:security-group/${g.id}`,
  };
}

/** EC2 groups rules with the same protocol and ports into one IpPermission. */
function permissionsXml(ctx: ActionContext, rules: IpPermission[]): XmlObject[] {
  const groups = new Map<string, IpPermission[]>();
  for (const r of rules) {
    const key = `${r.ipProtocol}/${r.fromPort}/${r.toPort}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((rs) => {
    const first = rs[0] as IpPermission;
    return {
      ipProtocol: first.ipProtocol,
      fromPort: first.fromPort,
      toPort: first.toPort,
      groups: rs
        .filter((r) => r.sourceGroupId)
        .map((r) => ({ userId: ctx.state.accountId, groupId: r.sourceGroupId, description: r.description })),
      ipRanges: rs.filter((r) => r.cidrIp).map((r) => ({ cidrIp: r.cidrIp, description: r.description })),
      ipv6Ranges: [],
      prefixListIds: [],
    };
  });
}

const SG_FILTERS: FilterFields<SecurityGroupRecord> = {
  'group-id': (g) => g.id,
  'group-name': (g) => g.name,
  'vpc-id': (g) => g.vpcId,
  description: (g) => g.description,
  'ip-permission.cidr': (g) => g.ingress.map((r) => r.cidrIp),
  'ip-permission.protocol': (g) => g.ingress.map((r) => r.ipProtocol),
  'ip-permission.from-port': (g) => g.ingress.map((r) => (r.fromPort === undefined ? undefined : String(r.fromPort))),
  'ip-permission.to-port': (g) => g.ingress.map((r) => (r.toPort === undefined ? undefined : String(r.toPort))),
  'ip-permission.group-id': (g) => g.ingress.map((r) => r.sourceGroupId),
};

/** A group named by GroupId, or by GroupName in the default VPC. */
function targetGroup(ctx: ActionContext): SecurityGroupRecord {
  const { state, region, params } = ctx;
  const id = params.str('GroupId');
  if (id) return state.getSecurityGroup(region, id);
  const name = params.str('GroupName');
  if (!name) throw new Ec2Error('MissingParameter', 'The request must contain the parameter groupId or groupName');
  const vpc = defaultVpc(region);
  const group = [...region.securityGroups.values()].find((g) => g.vpcId === vpc.id && g.name === name);
  if (!group) {
    throw new Ec2Error('InvalidGroup.NotFound', `The security group '${name}' does not exist in default VPC '${vpc.id}'`);
  }
  return group;
}

const describeSecurityGroups: ActionHandler = (ctx) => {
  const { state, region, params } = ctx;
  const ids = params.strings('GroupId');
  const names = params.strings('GroupName');
  for (const id of ids) state.getSecurityGroup(region, id);
  const vpc = defaultVpc(region);
  for (const name of names) {
    if (![...region.securityGroups.values()].some((g) => g.vpcId === vpc.id && g.name === name)) {
      throw new Ec2Error('InvalidGroup.NotFound', `The security group '${name}' does not exist in default VPC '${vpc.id}'`);
    }
  }
  let groups = [...region.securityGroups.values()];
  if (ids.length) groups = groups.filter((g) => ids.includes(g.id));
  if (names.length) groups = groups.filter((g) => g.vpcId === vpc.id && names.includes(g.name));
  groups = applyFilters(groups, params.structs('Filter'), { ...SG_FILTERS, 'owner-id': () => state.accountId });
  const page = paginate(groups, params);
  return { securityGroupInfo: page.items.map((g) => sgXml(ctx, g)), nextToken: page.nextToken };
};

const createSecurityGroup: ActionHandler = (ctx) => {
  const { state, region, params } = ctx;
  const name = params.required('GroupName');
  const description = params.required('GroupDescription');
  const vpcId = params.str('VpcId') ?? defaultVpc(region).id;
  if (!region.vpcs.has(vpcId)) throw notFound('InvalidVpcID.NotFound', 'vpc ID', [vpcId]);
  if (name.length > 255 || name === 'default' || name.startsWith('sg-')) {
    throw new Ec2Error('InvalidParameterValue', `Value (${name}) for parameter GroupName is invalid.`);
  }
  if ([...region.securityGroups.values()].some((g) => g.vpcId === vpcId && g.name === name)) {
    throw new Ec2Error('InvalidGroup.Duplicate', `The security group '${name}' already exists for VPC '${vpcId}'`);
  }
  const tags = tagSpecifications(params, ['security-group']);
  const group: SecurityGroupRecord = {
    id: state.newId('sg'),
    name,
    description,
    vpcId,
    ingress: [],
    egress: [{ ruleId: state.newId('sgr'), ipProtocol: '-1', cidrIp: '0.0.0.0/0' }],
    tags: copyTags(tags.get('security-group')),
  };
  region.securityGroups.set(group.id, group);
  return {
    return: true,
    groupId: group.id,
    tagSet: tagSetXml(group.tags),
    securityGroupArn: `arn:aws:ec2:${region.name}:${state.accountId}:security-group/${group.id}`,
  };
};

const PROTOCOLS: Record<string, string> = { '6': 'tcp', '17': 'udp', '1': 'icmp', all: '-1' };
const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** The rules a request describes, in either the IpPermissions or the flat legacy form. */
function requestedRules(ctx: ActionContext): Array<Omit<IpPermission, 'ruleId'>> {
  const { state, region, params } = ctx;
  const perms = params.structs('IpPermissions');
  const sources: Params[] = perms.length ? perms : [params];
  const rules: Array<Omit<IpPermission, 'ruleId'>> = [];
  for (const p of sources) {
    const raw = (p.str('IpProtocol') ?? '').toLowerCase();
    const ipProtocol = PROTOCOLS[raw] ?? raw;
    if (!['tcp', 'udp', 'icmp', '-1'].includes(ipProtocol)) {
      throw new Ec2Error('InvalidParameterValue', `Invalid value '${raw}' for IP protocol. Unknown protocol.`);
    }
    const ports = ipProtocol === '-1' ? {} : { fromPort: p.int('FromPort'), toPort: p.int('ToPort') };
    if (ipProtocol === 'tcp' || ipProtocol === 'udp') {
      const { fromPort, toPort } = ports;
      if (fromPort === undefined || toPort === undefined || fromPort < 0 || toPort > 65535 || fromPort > toPort) {
        throw new Ec2Error('InvalidParameterValue', `Invalid value for portRange. Must specify both from and to ports with TCP/UDP.`);
      }
    }
    const ranges = perms.length
      ? p.structs('IpRanges').map((r) => ({ cidrIp: r.str('CidrIp'), description: r.str('Description') }))
      : p.str('CidrIp')
        ? [{ cidrIp: p.str('CidrIp'), description: undefined }]
        : [];
    for (const range of ranges) {
      const m = CIDR.exec(range.cidrIp ?? '');
      if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) {
        throw new Ec2Error('InvalidParameterValue', `CIDR block ${range.cidrIp} is malformed`);
      }
      rules.push({ ipProtocol, ...ports, cidrIp: range.cidrIp, description: range.description });
    }
    for (const g of p.structs('Groups')) {
      const source = state.getSecurityGroup(region, g.required('GroupId'));
      rules.push({ ipProtocol, ...ports, sourceGroupId: source.id, description: g.str('Description') });
    }
  }
  if (!rules.length) throw new Ec2Error('MissingParameter', 'No IP permissions given');
  return rules;
}

const sameRule = (a: Omit<IpPermission, 'ruleId'>, b: Omit<IpPermission, 'ruleId'>) =>
  a.ipProtocol === b.ipProtocol &&
  a.fromPort === b.fromPort &&
  a.toPort === b.toPort &&
  a.cidrIp === b.cidrIp &&
  a.sourceGroupId === b.sourceGroupId;

const authorizeIngress: ActionHandler = (ctx) => {
  const group = targetGroup(ctx);
  const rules = requestedRules(ctx);
  for (const rule of rules) {
    if (group.ingress.some((r) => sameRule(r, rule))) {
      throw new Ec2Error(
        'InvalidPermission.Duplicate',
        `the specified rule "peer: ${rule.cidrIp ?? rule.sourceGroupId}, ${rule.ipProtocol.toUpperCase()}, from port: ${rule.fromPort}, to port: ${rule.toPort}, ALLOW" already exists`,
      );
    }
  }
  const added = rules.map((r) => ({ ...r, ruleId: ctx.state.newId('sgr') }));
  group.ingress.push(...added);
  return {
    return: true,
    securityGroupRuleSet: added.map((r) => ({
      securityGroupRuleId: r.ruleId,
      groupId: group.id,
      groupOwnerId: ctx.state.accountId,
      isEgress: false,
      ipProtocol: r.ipProtocol,
      fromPort: r.fromPort ?? -1,
      toPort: r.toPort ?? -1,
      cidrIpv4: r.cidrIp,
      description: r.description,
    })),
  };
};

const revokeIngress: ActionHandler = (ctx) => {
  const group = targetGroup(ctx);
  const rules = requestedRules(ctx);
  const missing = rules.filter((rule) => !group.ingress.some((r) => sameRule(r, rule)));
  if (missing.length) {
    throw new Ec2Error('InvalidPermission.NotFound', 'The specified rule does not exist in this security group.');
  }
  group.ingress = group.ingress.filter((r) => !rules.some((rule) => sameRule(r, rule)));
  return { return: true };
};

const deleteSecurityGroup: ActionHandler = (ctx) => {
  const { region } = ctx;
  const group = targetGroup(ctx);
  if (group.name === 'default') {
    throw new Ec2Error('CannotDelete', `the specified group: "${group.id}" name: "default" cannot be deleted by a user`);
  }
  const usedByInstance = [...region.instances.values()].some(
    (i) => i.state !== 'terminated' && i.securityGroupIds.includes(group.id),
  );
  const referenced = [...region.securityGroups.values()].some(
    (g) => g.id !== group.id && [...g.ingress, ...g.egress].some((r) => r.sourceGroupId === group.id),
  );
  if (usedByInstance || referenced) {
    throw new Ec2Error('DependencyViolation', `resource ${group.id} has a dependent object`);
  }
  region.securityGroups.delete(group.id);
  return { return: true, groupId: group.id };
};

export const networkActions: Record<string, ActionHandler> = {
  DescribeVpcs: describeVpcs,
  DescribeSubnets: describeSubnets,
  DescribeSecurityGroups: describeSecurityGroups,
  CreateSecurityGroup: createSecurityGroup,
  AuthorizeSecurityGroupIngress: authorizeIngress,
  RevokeSecurityGroupIngress: revokeIngress,
  DeleteSecurityGroup: deleteSecurityGroup,
};
