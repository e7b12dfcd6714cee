/**
 * Instances: RunInstances, DescribeInstances, StopInstances, StartInstances, TerminateInstances,
 * GetConsoleOutput. State machine: pending(0) -> running(16) -> stopping(64) -> stopped(80);
 * any -> shutting-down(32) -> terminated(48). The timed halves live in ../lifecycle.ts.
 */
import { Ec2Error } from '../errors.js';
import { applyFilters, paginate, type FilterFields } from '../filters.js';
import { instanceTypeInfo } from '../instance-types.js';
import { launch, setInstanceState, start, stop, terminate, userInitiated } from '../lifecycle.js';
import type { InstanceRecord, InstanceStateName, ReservationRecord, SubnetRecord } from '../model.js';
import { INSTANCE_STATE_CODES } from '../model.js';
import type { XmlObject } from '../xml.js';
import { resolveMappings } from './block-devices.js';
import {
  copyTags,
  instanceStateXml,
  priorResult,
  rememberResult,
  tagSetXml,
  tagSpecifications,
  type ActionContext,
  type ActionHandler,
} from './common.js';

function dashed(ip: string): string {
  return ip.replace(/\./g, '-');
}

export function instanceXml(ctx: ActionContext, i: InstanceRecord): XmlObject {
  const { region, state } = ctx;
  const running = i.state === 'running';
  const publicIp = running ? i.publicIp : undefined;
  const publicDns = publicIp ? `ec2-${dashed(publicIp)}.${region.name}.compute.amazonaws.com` : '';
  const gone = i.state === 'terminated';
  const groups = i.securityGroupIds.map((id) => ({ groupId: id, groupName: region.securityGroups.get(id)?.name }));
  const association = publicIp ? { publicIp, publicDnsName: publicDns, ipOwnerId: 'amazon' } : undefined;
  const attached = i.volumeIds
    .map((id) => region.volumes.get(id))
    .filter((v) => v?.attachment?.instanceId === i.id);
  return {
    instanceId: i.id,
    imageId: i.imageId,
    instanceState: instanceStateXml(i.state),
    privateDnsName: gone ? '' : `ip-${dashed(i.privateIp)}.${region.name}.compute.internal`,
    dnsName: publicDns,
    reason: i.stateTransitionReason,
    keyName: i.keyName,
    amiLaunchIndex: i.amiLaunchIndex,
    productCodes: [],
    instanceType: i.instanceType,
    launchTime: i.launchTime,
    placement: { availabilityZone: i.availabilityZone, groupName: '', tenancy: 'default' },
    monitoring: { state: 'disabled' },
    subnetId: gone ? undefined : i.subnetId,
    vpcId: gone ? undefined : i.vpcId,
    privateIpAddress: gone ? undefined : i.privateIp,
    ipAddress: publicIp,
    sourceDestCheck: true,
    groupSet: gone ? [] : groups,
    stateReason: i.stateReason,
    architecture: i.architecture,
    rootDeviceType: 'ebs',
    rootDeviceName: i.rootDeviceName,
    blockDeviceMapping: attached.map((v) => ({
      deviceName: v?.attachment?.device,
      ebs: {
        volumeId: v?.id,
        status: v?.attachment?.status,
        attachTime: v?.attachment?.attachTime,
        deleteOnTermination: v?.attachment?.deleteOnTermination,
      },
    })),
    virtualizationType: 'hvm',
    clientToken: i.clientToken,
    tagSet: tagSetXml(i.tags),
    hypervisor: 'xen',
    networkInterfaceSet: gone
      ? []
      : [
          {
            networkInterfaceId: `eni-${i.id.slice(2)}`,
            subnetId: i.subnetId,
            vpcId: i.vpcId,
            ownerId: state.accountId,
            status: 'in-use',
            privateIpAddress: i.privateIp,
            sourceDestCheck: true,
            groupSet: groups,
            attachment: {
              attachmentId: `eni-attach-${i.id.slice(2)}`,
              deviceIndex: 0,
              status: 'attached',
              attachTime: i.launchTime,
              deleteOnTermination: true,
              networkCardIndex: 0,
            },
            association,
            privateIpAddressesSet: [{ privateIpAddress: i.privateIp, primary: true, association }],
            interfaceType: 'interface',
          },
        ],
    ebsOptimized: false,
    enaSupport: true,
    platformDetails: 'Linux/UNIX',
    usageOperation: 'RunInstances',
  };
}

function reservationXml(ctx: ActionContext, r: ReservationRecord, instances: InstanceRecord[]): XmlObject {
  return {
    reservationId: r.id,
    ownerId: ctx.state.accountId,
    groupSet: [],
    instancesSet: instances.map((i) => instanceXml(ctx, i)),
  };
}

/** The subnet given, else the default subnet of the Placement's zone (or of the first zone). */
function pickSubnet(ctx: ActionContext): SubnetRecord {
  const { region, params } = ctx;
  const id = params.str('SubnetId');
  const zone = params.struct('Placement')?.str('AvailabilityZone');
  const zones = new Set([...region.subnets.values()].map((s) => s.availabilityZone));
  if (zone && !zones.has(zone)) throw new Ec2Error('InvalidParameterValue', `Invalid availability zone: [${zone}]`);
  if (id) {
    const subnet = region.subnets.get(id);
    if (!subnet) throw new Ec2Error('InvalidSubnetID.NotFound', `The subnet ID '${id}' does not exist`);
    if (zone && zone !== subnet.availabilityZone) {
      throw new Ec2Error('InvalidParameterValue', `Value (${zone}) for parameter availabilityZone is invalid. Subnet '${id}' is in the availability zone ${subnet.availabilityZone}`);
    }
    return subnet;
  }
  const subnet = [...region.subnets.values()].find((s) => s.defaultForAz && (!zone || s.availabilityZone === zone));
  if (!subnet) throw new Ec2Error('VPCIdNotSpecified', 'No default VPC for this user');
  return subnet;
}

function pickGroups(ctx: ActionContext, subnet: SubnetRecord): string[] {
  const { state, region, params } = ctx;
  const ids = params.strings('SecurityGroupId');
  const names = params.strings('SecurityGroup');
  if (names.length && params.has('SubnetId')) {
    throw new Ec2Error('InvalidParameterCombination', 'The parameter groupName cannot be used with the parameter subnet');
  }
  const groups = ids.map((id) => state.getSecurityGroup(region, id));
  for (const name of names) {
    const g = [...region.securityGroups.values()].find((x) => x.vpcId === subnet.vpcId && x.name === name);
    if (!g) throw new Ec2Error('InvalidGroup.NotFound', `The security group '${name}' does not exist in VPC '${subnet.vpcId}'`);
    groups.push(g);
  }
  for (const g of groups) {
    if (g.vpcId !== subnet.vpcId) {
      throw new Ec2Error('InvalidParameter', `Security group ${g.id} and subnet ${subnet.id} belong to different networks.`);
    }
  }
  if (groups.length) return [...new Set(groups.map((g) => g.id))];
  const fallback = [...region.securityGroups.values()].find((g) => g.vpcId === subnet.vpcId && g.name === 'default');
  return fallback ? [fallback.id] : [];
}

const runInstances: ActionHandler = (ctx) => {
  const { state, region, params } = ctx;
  const token = params.str('ClientToken') ?? '';
  const prior = priorResult(ctx, 'RunInstances', token);
  if (prior) {
    const reservation = region.reservations.get(prior) as ReservationRecord;
    const instances = reservation.instanceIds.map((id) => region.instances.get(id) as InstanceRecord);
    return reservationXml(ctx, reservation, instances);
  }
  const image = state.getImage(region, params.required('ImageId'));
  if (image.state !== 'available') {
    throw new Ec2Error('InvalidAMIID.Unavailable', `The image id '[${image.id}]' is not available (state ${image.state})`);
  }
  const minCount = params.int('MinCount');
  const maxCount = params.int('MaxCount');
  if (minCount === undefined) throw new Ec2Error('MissingParameter', 'The request must contain the parameter MinCount');
  if (maxCount === undefined) throw new Ec2Error('MissingParameter', 'The request must contain the parameter MaxCount');
  if (minCount < 1 || maxCount < minCount) {
    throw new Ec2Error('InvalidParameterValue', `Invalid MinCount ${minCount} / MaxCount ${maxCount}`);
  }
  const instanceType = params.str('InstanceType') ?? 'm1.small';
  const info = instanceTypeInfo(instanceType);
  if (!info) throw new Ec2Error('InvalidParameterValue', `Invalid value '${instanceType}' for InstanceType.`);
  if (info.architecture !== image.architecture) {
    throw new Ec2Error(
      'InvalidParameterValue',
      `The architecture '${info.architecture}' of the specified instance type does not match the architecture '${image.architecture}' of the specified AMI.`,
    );
  }
  const keyName = params.str('KeyName');
  if (keyName) state.getKeyPair(region, keyName);
  const subnet = pickSubnet(ctx);
  const securityGroupIds = pickGroups(ctx, subnet);
  const tags = tagSpecifications(params, ['instance', 'volume', 'network-interface']);
  const mappings = resolveMappings(ctx, image);
  const reservation: ReservationRecord = {
    id: state.newId('r'),
    instanceIds: [],
    clientToken: token,
    fingerprint: params.fingerprint(),
  };
  const now = new Date();
  const instances: InstanceRecord[] = [];
  for (let n = 0; n < maxCount; n++) {
    const instance: InstanceRecord = {
      id: state.newId('i'),
      reservationId: reservation.id,
      imageId: image.id,
      instanceType,
      keyName,
      subnetId: subnet.id,
      vpcId: subnet.vpcId,
      availabilityZone: subnet.availabilityZone,
      securityGroupIds,
      state: 'pending',
      stateTransitionReason: '',
      launchTime: now,
      launchedAt: performance.now(),
      privateIp: state.nextPrivateIp(),
      architecture: image.architecture,
      rootDeviceName: image.rootDeviceName,
      volumeIds: [],
      clientToken: token,
      amiLaunchIndex: n,
      tags: copyTags(tags.get('instance')),
      sshUser: image.sshUser,
      cpus: info.cpus,
      memoryMiB: info.memoryMiB,
      generation: 0,
      machineExists: false,
    };
    for (const m of mappings) {
      const volumeId = state.newId('vol');
      region.volumes.set(volumeId, {
        id: volumeId,
        availabilityZone: subnet.availabilityZone,
        size: m.volumeSize,
        volumeType: m.volumeType,
        iops: m.iops,
        throughput: m.throughput,
        encrypted: m.encrypted,
        kmsKeyId: m.kmsKeyId,
        snapshotId: m.snapshotId,
        state: 'in-use',
        createTime: now,
        attachment: { instanceId: instance.id, device: m.deviceName, status: 'attached', attachTime: now, deleteOnTermination: m.deleteOnTermination },
        tags: copyTags(tags.get('volume')),
      });
      instance.volumeIds.push(volumeId);
    }
    region.instances.set(instance.id, instance);
    reservation.instanceIds.push(instance.id);
    instances.push(instance);
  }
  region.reservations.set(reservation.id, reservation);
  rememberResult(ctx, 'RunInstances', token, reservation.id);
  for (const instance of instances) launch(state, region, instance);
  return reservationXml(ctx, reservation, instances);
};

const INSTANCE_FILTERS: FilterFields<InstanceRecord> = {
  'instance-id': (i) => i.id,
  'instance-state-name': (i) => i.state,
  'instance-state-code': (i) => String(INSTANCE_STATE_CODES[i.state]),
  'image-id': (i) => i.imageId,
  'instance-type': (i) => i.instanceType,
  'key-name': (i) => i.keyName,
  'vpc-id': (i) => i.vpcId,
  'subnet-id': (i) => i.subnetId,
  'reservation-id': (i) => i.reservationId,
  'client-token': (i) => i.clientToken,
  'instance.group-id': (i) => i.securityGroupIds,
  'group-id': (i) => i.securityGroupIds,
  'ip-address': (i) => (i.state === 'running' ? i.publicIp : undefined),
  'private-ip-address': (i) => i.privateIp,
  'availability-zone': (i) => i.availabilityZone,
  architecture: (i) => i.architecture,
  'root-device-type': () => 'ebs',
  'launch-index': (i) => String(i.amiLaunchIndex),
};

const describeInstances: ActionHandler = (ctx) => {
  const { state, region, params } = ctx;
  const ids = params.strings('InstanceId');
  if (ids.length && params.has('MaxResults')) {
    throw new Ec2Error('InvalidParameterCombination', 'The parameter instancesSet cannot be used with the parameter maxResults');
  }
  let instances = ids.length
    ? state.getInstances(region, ids)
    : [...region.instances.values()].filter((i) => state.instanceVisible(i));
  instances = applyFilters(instances, params.structs('Filter'), INSTANCE_FILTERS);
  const page = paginate(instances, params);
  const byReservation = new Map<string, InstanceRecord[]>();
  for (const i of page.items) byReservation.set(i.reservationId, [...(byReservation.get(i.reservationId) ?? []), i]);
  return {
    reservationSet: [...byReservation].map(([id, list]) =>
      reservationXml(ctx, region.reservations.get(id) as ReservationRecord, list),
    ),
    nextToken: page.nextToken,
  };
};

type Change = { instance: InstanceRecord; previous: InstanceStateName };

function changeXml(changes: Change[]): XmlObject {
  return {
    instancesSet: changes.map(({ instance, previous }) => ({
      instanceId: instance.id,
      currentState: instanceStateXml(instance.state),
      previousState: instanceStateXml(previous),
    })),
  };
}

function targets(ctx: ActionContext): InstanceRecord[] {
  const ids = ctx.params.strings('InstanceId');
  if (!ids.length) throw new Ec2Error('MissingParameter', 'The request must contain the parameter InstanceId');
  return ctx.state.getInstances(ctx.region, ids);
}

function requireStates(instances: InstanceRecord[], allowed: InstanceStateName[], verb: string): void {
  for (const i of instances) {
    if (!allowed.includes(i.state)) {
      throw new Ec2Error(
        'IncorrectInstanceState',
        `This instance '${i.id}' is not in a state from which it can be ${verb}.`,
      );
    }
  }
}

const stopInstances: ActionHandler = (ctx) => {
  const instances = targets(ctx);
  requireStates(instances, ['running', 'stopping', 'stopped'], 'stopped');
  const changes = instances.map((instance) => ({ instance, previous: instance.state }));
  for (const instance of instances) {
    if (instance.state !== 'running') continue;
    setInstanceState(instance, 'stopping');
    instance.stateTransitionReason = userInitiated();
    stop(ctx.state, instance);
  }
  return changeXml(changes);
};

const startInstances: ActionHandler = (ctx) => {
  const instances = targets(ctx);
  requireStates(instances, ['stopped', 'pending', 'running'], 'started');
  const changes = instances.map((instance) => ({ instance, previous: instance.state }));
  for (const instance of instances) {
    if (instance.state !== 'stopped') continue;
    setInstanceState(instance, 'pending');
    instance.stateReason = undefined;
    instance.stateTransitionReason = '';
    start(ctx.state, ctx.region, instance);
  }
  return changeXml(changes);
};

const terminateInstances: ActionHandler = (ctx) => {
  const instances = targets(ctx);
  const changes = instances.map((instance) => ({ instance, previous: instance.state }));
  for (const instance of instances) {
    if (instance.state === 'terminated' || instance.state === 'shutting-down') continue;
    setInstanceState(instance, 'shutting-down');
    instance.stateTransitionReason = userInitiated();
    instance.stateReason = undefined;
    terminate(ctx.state, ctx.region, instance);
  }
  return changeXml(changes);
};

const getConsoleOutput: ActionHandler = async (ctx) => {
  const instance = ctx.state.getInstance(ctx.region, ctx.params.required('InstanceId'));
  const text = instance.machineExists ? await ctx.state.machines.consoleOutput(instance.id) : '';
  return {
    instanceId: instance.id,
    timestamp: new Date(),
    output: text ? Buffer.from(text, 'utf8').toString('base64') : undefined,
  };
};

export const instanceActions: Record<string, ActionHandler> = {
  RunInstances: runInstances,
  DescribeInstances: describeInstances,
  StopInstances: stopInstances,
  StartInstances: startInstances,
  TerminateInstances: terminateInstances,
  GetConsoleOutput: getConsoleOutput,
};
