/** EBS: DescribeVolumes, DeleteVolume, DescribeSnapshots, DeleteSnapshot. */
import { Ec2Error, notFound } from '../errors.js';
import { applyFilters, paginate, type FilterFields } from '../filters.js';
import type { SnapshotRecord, VolumeRecord } from '../model.js';
import type { XmlObject } from '../xml.js';
import { tagSetXml, type ActionContext, type ActionHandler } from './common.js';

export function volumeXml(v: VolumeRecord): XmlObject {
  const a = v.attachment;
  return {
    volumeId: v.id,
    size: v.size,
    snapshotId: v.snapshotId ?? '',
    availabilityZone: v.availabilityZone,
    status: v.state,
    createTime: v.createTime,
    attachmentSet: a
      ? [
          {
            volumeId: v.id,
            instanceId: a.instanceId,
            device: a.device,
            status: a.status,
            attachTime: a.attachTime,
            deleteOnTermination: a.deleteOnTermination,
          },
        ]
      : [],
    volumeType: v.volumeType,
    iops: v.iops,
    throughput: v.throughput,
    encrypted: v.encrypted,
    kmsKeyId: v.kmsKeyId,
    tagSet: tagSetXml(v.tags),
    multiAttachEnabled: false,
  };
}

const VOLUME_FILTERS: FilterFields<VolumeRecord> = {
  'volume-id': (v) => v.id,
  status: (v) => v.state,
  'attachment.instance-id': (v) => v.attachment?.instanceId,
  'attachment.status': (v) => v.attachment?.status,
  'attachment.device': (v) => v.attachment?.device,
  'attachment.delete-on-termination': (v) => (v.attachment ? String(v.attachment.deleteOnTermination) : undefined),
  size: (v) => String(v.size),
  'volume-type': (v) => v.volumeType,
  'snapshot-id': (v) => v.snapshotId,
  'availability-zone': (v) => v.availabilityZone,
  encrypted: (v) => v.encrypted,
  'create-time': (v) => v.createTime.toISOString(),
};

const describeVolumes: ActionHandler = ({ region, params }) => {
  const ids = params.strings('VolumeId');
  const missing = ids.filter((id) => !region.volumes.has(id));
  if (missing.length) throw notFound('InvalidVolume.NotFound', 'volume', missing);
  let volumes = [...region.volumes.values()].filter((v) => !ids.length || ids.includes(v.id));
  volumes = applyFilters(volumes, params.structs('Filter'), VOLUME_FILTERS);
  const page = paginate(volumes, params);
  return { volumeSet: page.items.map(volumeXml), nextToken: page.nextToken };
};

const deleteVolume: ActionHandler = async ({ state, region, params }) => {
  const volume = state.getVolume(region, params.required('VolumeId'));
  if (volume.attachment) {
    throw new Ec2Error('VolumeInUse', `Volume ${volume.id} is currently attached to ${volume.attachment.instanceId}`);
  }
  region.volumes.delete(volume.id);
  await state.machines.deleteDisk(volume.id);
  return { return: true };
};

function snapshotXml(s: SnapshotRecord): XmlObject {
  return {
    snapshotId: s.id,
    volumeId: s.volumeId,
    status: s.state,
    statusMessage: s.stateMessage,
    startTime: s.startTime,
    progress: s.state === 'completed' ? '100%' : s.state === 'pending' ? '0%' : undefined,
    ownerId: s.ownerId,
    volumeSize: s.volumeSize,
    description: s.description,
    encrypted: s.encrypted,
    kmsKeyId: s.kmsKeyId,
    tagSet: tagSetXml(s.tags),
    storageTier: 'standard',
  };
}

const SNAPSHOT_FILTERS: FilterFields<SnapshotRecord> = {
  'snapshot-id': (s) => s.id,
  'volume-id': (s) => s.volumeId,
  status: (s) => s.state,
  'owner-id': (s) => s.ownerId,
  description: (s) => s.description,
  'volume-size': (s) => String(s.volumeSize),
  encrypted: (s) => s.encrypted,
  'start-time': (s) => s.startTime.toISOString(),
};

function ownSnapshot(ctx: ActionContext, id: string): SnapshotRecord {
  const snapshot = ctx.region.snapshots.get(id);
  if (!snapshot || snapshot.ownerId !== ctx.state.accountId) throw notFound('InvalidSnapshot.NotFound', 'snapshot', [id]);
  return snapshot;
}

const describeSnapshots: ActionHandler = (ctx) => {
  const { state, region, params } = ctx;
  const ids = params.strings('SnapshotId');
  for (const id of ids) ownSnapshot(ctx, id);
  const owners = params.strings('Owner').map((o) => (o === 'self' ? state.accountId : o));
  let snapshots = [...region.snapshots.values()].filter((s) => s.ownerId === state.accountId);
  if (ids.length) snapshots = snapshots.filter((s) => ids.includes(s.id));
  if (owners.length) snapshots = snapshots.filter((s) => owners.includes(s.ownerId));
  snapshots = applyFilters(snapshots, params.structs('Filter'), SNAPSHOT_FILTERS);
  const page = paginate(snapshots, params);
  return { snapshotSet: page.items.map(snapshotXml), nextToken: page.nextToken };
};

const deleteSnapshot: ActionHandler = async (ctx) => {
  const { state, region, params } = ctx;
  const snapshot = ownSnapshot(ctx, params.required('SnapshotId'));
  const user = [...region.images.values()].find((i) => i.mappings.some((m) => m.snapshotId === snapshot.id));
  if (user) {
    throw new Ec2Error('InvalidSnapshot.InUse', `The snapshot ${snapshot.id} is currently in use by ${user.id}`);
  }
  region.snapshots.delete(snapshot.id);
  await state.machines.deleteSnapshot(snapshot.id);
  return { return: true };
};

export const storageActions: Record<string, ActionHandler> = {
  DescribeVolumes: describeVolumes,
  DeleteVolume: deleteVolume,
  DescribeSnapshots: describeSnapshots,
  DeleteSnapshot: deleteSnapshot,
};
