/**
 * EBS volumes on their own: CreateVolume (blank or from a snapshot, in one zone; creating ->
 * available), AttachVolume (same zone only, to a running or stopped instance, at a free device;
 * attaching -> attached, never DeleteOnTermination) and DetachVolume (detaching -> available).
 * The timed halves are the transitions `volume.available`, `volume.attached` and `volume.detached`.
 * A volume attached to a running machine reaches the machine backend at its next start (no hotplug).
 */
import { Ec2Error } from '../errors.js';
import type { InstanceRecord, RegionState, VolumeAttachment, VolumeRecord } from '../model.js';
import type { Ec2State } from '../state.js';
import type { XmlObject } from '../xml.js';
import { checkVolume } from './block-devices.js';
import { volumeXml } from './storage.js';
import { copyTags, priorResult, rememberResult, tagSpecifications, type ActionHandler } from './common.js';

const DEVICE = /^\/dev\/(sd|xvd)[a-z]{1,2}[0-9]?$/;

function zoneOf(region: RegionState, zone: string): string {
  if (![...region.subnets.values()].some((s) => s.availabilityZone === zone)) {
    throw new Ec2Error('InvalidParameterValue', `Invalid availability zone: [${zone}]`);
  }
  return zone;
}

const createVolume: ActionHandler = (ctx) => {
  const { state, region, params } = ctx;
  const token = params.str('ClientToken');
  const prior = priorResult(ctx, 'CreateVolume', token);
  if (prior) return volumeXml(state.getVolume(region, prior));
  const zone = zoneOf(region, params.required('AvailabilityZone'));
  const snapshotId = params.str('SnapshotId');
  const snapshot = snapshotId ? state.getSnapshot(region, snapshotId) : undefined;
  if (snapshot && snapshot.state !== 'completed') throw new Ec2Error('IncorrectState', `Snapshot '${snapshot.id}' is not 'completed'.`);
  const size = params.int('Size') ?? snapshot?.volumeSize;
  if (size === undefined) throw new Ec2Error('MissingParameter', 'The request must contain the parameter size or snapshotId');
  if (snapshot && size < snapshot.volumeSize) {
    throw new Ec2Error('InvalidParameterValue', `The size of the volume, ${size} GiB, is smaller than the snapshot '${snapshot.id}', ${snapshot.volumeSize} GiB.`);
  }
  const encrypted = params.bool('Encrypted') ?? snapshot?.encrypted ?? false;
  if (params.has('KmsKeyId') && !encrypted) {
    throw new Ec2Error('InvalidParameterDependency', 'The parameter KmsKeyId requires the parameter Encrypted to be set.');
  }
  const spec = checkVolume(ctx, {
    deviceName: '',
    snapshotId,
    volumeSize: size,
    volumeType: params.str('VolumeType') ?? 'gp2',
    deleteOnTermination: false,
    encrypted,
    kmsKeyId: encrypted ? (params.str('KmsKeyId') ?? snapshot?.kmsKeyId) : undefined,
    iops: params.int('Iops'),
    throughput: params.int('Throughput'),
  });
  const tags = tagSpecifications(params, ['volume']);
  const volume: VolumeRecord = {
    id: state.newId('vol'),
    availabilityZone: zone,
    size: spec.volumeSize,
    volumeType: spec.volumeType,
    iops: spec.iops,
    throughput: spec.throughput,
    encrypted: spec.encrypted,
    kmsKeyId: spec.kmsKeyId,
    snapshotId,
    state: 'creating',
    createTime: new Date(),
    tags: copyTags(tags.get('volume')),
  };
  region.volumes.set(volume.id, volume);
  rememberResult(ctx, 'CreateVolume', token, volume.id);
  void createDisk(state, volume);
  return volumeXml(volume);
};

async function createDisk(state: Ec2State, volume: VolumeRecord): Promise<void> {
  try {
    await state.machines.createDisk(volume.id, volume.size, volume.snapshotId);
  } catch (error) {
    volume.state = 'error';
    state.recordBackendError(`create-volume ${volume.id}`, error);
    return;
  }
  if (state.closed) return;
  state.transitions.schedule('volume.available', () => {
    if (volume.state === 'creating') volume.state = 'available';
  });
}

function attachmentXml(volume: VolumeRecord, a: VolumeAttachment): XmlObject {
  return { volumeId: volume.id, instanceId: a.instanceId, device: a.device, status: a.status, attachTime: a.attachTime, deleteOnTermination: a.deleteOnTermination };
}

function deviceInUse(region: RegionState, instance: InstanceRecord, device: string): boolean {
  return instance.volumeIds.some((id) => {
    const a = region.volumes.get(id)?.attachment;
    return a?.instanceId === instance.id && a.device === device;
  });
}

const attachVolume: ActionHandler = ({ state, region, params }) => {
  const volume = state.getVolume(region, params.required('VolumeId'));
  const instance = state.getInstance(region, params.required('InstanceId'));
  const device = params.required('Device');
  if (volume.attachment) throw new Ec2Error('VolumeInUse', `${volume.id} is already attached to an instance`);
  if (volume.state !== 'available') throw new Ec2Error('IncorrectState', `${volume.id} is not 'available'.`);
  if (volume.availabilityZone !== instance.availabilityZone) {
    throw new Ec2Error('InvalidVolume.ZoneMismatch', `The volume '${volume.id}' is not in the same availability zone as instance '${instance.id}'`);
  }
  if (instance.state !== 'running' && instance.state !== 'stopped') throw new Ec2Error('IncorrectState', `Instance '${instance.id}' is not 'running'.`);
  if (!DEVICE.test(device)) throw new Ec2Error('InvalidParameterValue', `Value (${device}) for parameter device is invalid. ${device} is not a valid EBS device name.`);
  if (deviceInUse(region, instance, device)) {
    throw new Ec2Error('InvalidParameterValue', `Invalid value '${device}' for unixDevice. Attachment point ${device} is already in use`);
  }
  const attachment: VolumeAttachment = { instanceId: instance.id, device, status: 'attaching', attachTime: new Date(), deleteOnTermination: false };
  volume.attachment = attachment;
  volume.state = 'in-use';
  instance.volumeIds.push(volume.id);
  state.transitions.schedule('volume.attached', () => {
    if (volume.attachment === attachment && attachment.status === 'attaching') attachment.status = 'attached';
  });
  return attachmentXml(volume, attachment);
};

const detachVolume: ActionHandler = ({ state, region, params }) => {
  const volume = state.getVolume(region, params.required('VolumeId'));
  const attachment = volume.attachment;
  if (!attachment) throw new Ec2Error('IncorrectState', `Volume '${volume.id}' is in the '${volume.state}' state.`);
  const instanceId = params.str('InstanceId');
  const device = params.str('Device');
  if ((instanceId && instanceId !== attachment.instanceId) || (device && device !== attachment.device)) {
    throw new Ec2Error('InvalidAttachment.NotFound', `Attachment point for volume '${volume.id}' on instance '${instanceId ?? attachment.instanceId}' does not exist`);
  }
  const instance = region.instances.get(attachment.instanceId);
  if (instance && attachment.device === instance.rootDeviceName && instance.state !== 'stopped') {
    throw new Ec2Error('IncorrectState', `Unable to detach root volume '${volume.id}' from instance '${instance.id}'`);
  }
  if (attachment.status !== 'detaching') {
    attachment.status = 'detaching';
    state.transitions.schedule('volume.detached', () => {
      if (volume.attachment !== attachment) return;
      volume.attachment = undefined;
      volume.state = 'available';
      if (instance) instance.volumeIds = instance.volumeIds.filter((id) => id !== volume.id);
    });
  }
  return attachmentXml(volume, attachment);
};

export const volumeActions: Record<string, ActionHandler> = {
  CreateVolume: createVolume,
  AttachVolume: attachVolume,
  DetachVolume: detachVolume,
};
