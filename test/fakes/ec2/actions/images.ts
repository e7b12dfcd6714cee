/**
 * Images: DescribeImages, CreateImage, DeregisterImage, CopyImage, ModifyImageAttribute,
 * DescribeImageAttribute.
 */
import { Ec2Error } from '../errors.js';
import { applyFilters, paginate, type FilterFields } from '../filters.js';
import { captureImage, copyImageSnapshots } from '../lifecycle.js';
import type { ImageMapping, ImageRecord, RegionState, SnapshotRecord } from '../model.js';
import type { XmlObject } from '../xml.js';
import {
  copyTags,
  imageMappingXml,
  priorResult,
  rememberResult,
  tagSetXml,
  tagSpecifications,
  type ActionContext,
  type ActionHandler,
} from './common.js';

const IMAGE_FILTERS: FilterFields<ImageRecord> = {
  name: (i) => i.name,
  architecture: (i) => i.architecture,
  state: (i) => i.state,
  'owner-id': (i) => i.ownerId,
  'owner-alias': (i) => i.ownerAlias,
  'image-id': (i) => i.id,
  'is-public': (i) => i.launchGroupAll,
  'image-type': () => 'machine',
  'root-device-type': () => 'ebs',
  'root-device-name': (i) => i.rootDeviceName,
  'virtualization-type': () => 'hvm',
  hypervisor: () => 'xen',
  'platform-details': () => 'Linux/UNIX',
  description: (i) => i.description,
  'creation-date': (i) => i.creationDate.toISOString(),
  'source-instance-id': (i) => i.sourceInstanceId,
  'block-device-mapping.snapshot-id': (i) => i.mappings.map((m) => m.snapshotId),
  'block-device-mapping.volume-size': (i) => i.mappings.map((m) => String(m.volumeSize)),
  'block-device-mapping.volume-type': (i) => i.mappings.map((m) => m.volumeType),
  'block-device-mapping.device-name': (i) => i.mappings.map((m) => m.deviceName),
  'block-device-mapping.encrypted': (i) => i.mappings.map((m) => String(m.encrypted)),
};

export function imageXml(image: ImageRecord): XmlObject {
  return {
    imageId: image.id,
    imageLocation: `${image.ownerId}/${image.name}`,
    imageState: image.state,
    imageOwnerId: image.ownerId,
    creationDate: image.creationDate.toISOString(),
    isPublic: image.launchGroupAll,
    architecture: image.architecture,
    imageType: 'machine',
    sriovNetSupport: 'simple',
    name: image.name,
    description: image.description,
    imageOwnerAlias: image.ownerAlias,
    rootDeviceType: 'ebs',
    rootDeviceName: image.rootDeviceName,
    blockDeviceMapping: image.mappings.map(imageMappingXml),
    virtualizationType: 'hvm',
    tagSet: tagSetXml(image.tags),
    stateReason: image.stateReason,
    hypervisor: 'xen',
    enaSupport: true,
    platformDetails: 'Linux/UNIX',
    usageOperation: 'RunInstances',
    bootMode: image.bootMode,
    sourceInstanceId: image.sourceInstanceId,
    sourceImageId: image.sourceImageId,
    sourceImageRegion: image.sourceImageRegion,
  };
}

function ownerMatches(ctx: ActionContext, image: ImageRecord, owner: string): boolean {
  if (owner === 'self') return image.ownerId === ctx.state.accountId;
  if (owner === 'amazon' || owner === 'aws-marketplace') return image.ownerAlias === owner;
  return image.ownerId === owner;
}

function executableBy(ctx: ActionContext, image: ImageRecord, who: string): boolean {
  if (who === 'all') return image.launchGroupAll;
  const account = who === 'self' ? ctx.state.accountId : who;
  return image.ownerId === account || image.launchUserIds.has(account);
}

const describeImages: ActionHandler = (ctx) => {
  const { state, region, params } = ctx;
  const ids = params.strings('ImageId');
  let images = [...region.images.values()].filter((i) => state.canUseImage(i));
  if (ids.length) {
    if (params.has('MaxResults')) {
      throw new Ec2Error('InvalidParameterCombination', 'The parameter imageIdsSet cannot be used with maxResults');
    }
    for (const id of ids) state.getImage(region, id);
    images = images.filter((i) => ids.includes(i.id));
  }
  const owners = params.strings('Owner');
  if (owners.length) images = images.filter((i) => owners.some((o) => ownerMatches(ctx, i, o)));
  const executable = params.strings('ExecutableBy');
  if (executable.length) images = images.filter((i) => executable.some((e) => executableBy(ctx, i, e)));
  images = applyFilters(images, params.structs('Filter'), IMAGE_FILTERS);
  // EC2 promises no order; ids are random, so this is not chronological either.
  images.sort((a, b) => a.id.localeCompare(b.id));
  const page = paginate(images, params);
  return { imagesSet: page.items.map(imageXml), nextToken: page.nextToken };
};

const AMI_NAME = /^[a-zA-Z0-9()[\] ./\-'@_]{3,128}$/;

function checkNewName(ctx: ActionContext, region: RegionState, name: string): void {
  if (!AMI_NAME.test(name)) {
    throw new Ec2Error('InvalidAMIName.Malformed', `AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/' and '_'`);
  }
  for (const image of region.images.values()) {
    if (image.ownerId === ctx.state.accountId && image.name === name) {
      throw new Ec2Error('InvalidAMIName.Duplicate', `AMI name ${name} is already in use by AMI ${image.id}`);
    }
  }
}

const createImage: ActionHandler = (ctx) => {
  const { state, region, params } = ctx;
  const instance = state.getInstance(region, params.required('InstanceId'));
  const name = params.required('Name');
  checkNewName(ctx, region, name);
  if (instance.state !== 'running' && instance.state !== 'stopped') {
    throw new Ec2Error('IncorrectInstanceState', `The instance '${instance.id}' is not in a state from which it can be imaged.`);
  }
  const tags = tagSpecifications(params, ['image', 'snapshot']);
  const overrides = new Map(params.structs('BlockDeviceMapping').map((m) => [m.str('DeviceName') ?? '', m]));
  const imageId = state.newId('ami');
  const pairs: Array<{ volumeId: string; snapshot: SnapshotRecord }> = [];
  const mappings: ImageMapping[] = [];
  for (const volumeId of instance.volumeIds) {
    const volume = region.volumes.get(volumeId);
    if (!volume?.attachment) continue;
    const override = overrides.get(volume.attachment.device);
    if (override?.has('NoDevice')) continue;
    const ebs = override?.struct('Ebs');
    const snapshot: SnapshotRecord = {
      id: state.newId('snap'),
      volumeId,
      state: 'pending',
      startTime: new Date(),
      ownerId: state.accountId,
      description: `Created by CreateImage(${instance.id}) for ${imageId}`,
      volumeSize: volume.size,
      encrypted: volume.encrypted,
      kmsKeyId: volume.kmsKeyId,
      tags: copyTags(tags.get('snapshot')),
    };
    pairs.push({ volumeId, snapshot });
    mappings.push({
      deviceName: volume.attachment.device,
      snapshotId: snapshot.id,
      volumeSize: Math.max(ebs?.int('VolumeSize') ?? volume.size, volume.size),
      volumeType: ebs?.str('VolumeType') ?? volume.volumeType,
      deleteOnTermination: ebs?.bool('DeleteOnTermination') ?? volume.attachment.deleteOnTermination,
      encrypted: volume.encrypted,
      iops: volume.iops,
      throughput: volume.throughput,
      kmsKeyId: volume.kmsKeyId,
    });
  }
  const source = region.images.get(instance.imageId);
  const image: ImageRecord = {
    id: imageId,
    name,
    description: params.str('Description'),
    ownerId: state.accountId,
    state: 'pending',
    architecture: instance.architecture,
    creationDate: new Date(),
    rootDeviceName: instance.rootDeviceName,
    mappings,
    launchGroupAll: false,
    launchUserIds: new Set(),
    tags: copyTags(tags.get('image')),
    sshUser: instance.sshUser,
    sourceInstanceId: instance.id,
    bootMode: source?.bootMode,
  };
  region.images.set(image.id, image);
  for (const { snapshot } of pairs) region.snapshots.set(snapshot.id, snapshot);
  const reboot = instance.state === 'running' && params.bool('NoReboot') !== true;
  captureImage(state, region, instance, image, pairs, reboot);
  return { imageId };
};

const deregisterImage: ActionHandler = async (ctx) => {
  const { state, region, params } = ctx;
  const image = state.getOwnImage(region, params.required('ImageId'));
  region.images.delete(image.id);
  if (params.bool('DeleteAssociatedSnapshots') !== true) return { return: true };
  const results = [];
  for (const m of image.mappings) {
    if (!m.snapshotId) continue;
    const inUse = [...region.images.values()].some((i) => i.mappings.some((x) => x.snapshotId === m.snapshotId));
    if (inUse) {
      results.push({ snapshotId: m.snapshotId, returnCode: 'error-generic' });
      continue;
    }
    region.snapshots.delete(m.snapshotId);
    await state.machines.deleteSnapshot(m.snapshotId);
    results.push({ snapshotId: m.snapshotId, returnCode: 'success' });
  }
  return { return: true, deleteSnapshotResultSet: results };
};

const copyImage: ActionHandler = (ctx) => {
  const { state, region, params } = ctx;
  const sourceRegionName = params.required('SourceRegion');
  const sourceImageId = params.required('SourceImageId');
  const name = params.required('Name');
  const token = params.str('ClientToken');
  const prior = priorResult(ctx, 'CopyImage', token);
  if (prior) return { imageId: prior };
  const sourceRegion = state.region(sourceRegionName);
  const source = state.getImage(sourceRegion, sourceImageId);
  if (source.state !== 'available') {
    throw new Ec2Error('IncorrectState', `Image ${source.id} is not in a valid state for copying (${source.state})`);
  }
  checkNewName(ctx, region, name);
  const tags = tagSpecifications(params, ['image', 'snapshot']);
  const encrypted = params.bool('Encrypted') === true;
  const kmsKeyId = params.str('KmsKeyId');
  if (kmsKeyId && !encrypted) {
    throw new Ec2Error('InvalidParameterDependency', 'KmsKeyId requires Encrypted to be set to true');
  }
  const imageId = state.newId('ami');
  const pairs: Array<{ sourceSnapshotId: string; size: number; snapshot: SnapshotRecord }> = [];
  const mappings = source.mappings.map((m): ImageMapping => {
    if (!m.snapshotId) return { ...m };
    const snapshot: SnapshotRecord = {
      id: state.newId('snap'),
      volumeId: 'vol-ffffffff',
      state: 'pending',
      startTime: new Date(),
      ownerId: state.accountId,
      description: `Copied for DestinationAmi ${imageId} from SourceAmi ${source.id} for SourceSnapshot ${m.snapshotId}. Task created on ${Date.now()}.`,
      volumeSize: m.volumeSize,
      encrypted: encrypted || m.encrypted,
      kmsKeyId: encrypted ? (kmsKeyId ?? m.kmsKeyId) : m.kmsKeyId,
      tags: copyTags(tags.get('snapshot')),
    };
    pairs.push({ sourceSnapshotId: m.snapshotId, size: m.volumeSize, snapshot });
    return { ...m, snapshotId: snapshot.id, encrypted: snapshot.encrypted, kmsKeyId: snapshot.kmsKeyId };
  });
  const imageTags = params.bool('CopyImageTags') ? copyTags(source.tags) : new Map<string, string>();
  for (const [k, v] of tags.get('image') ?? []) imageTags.set(k, v);
  const image: ImageRecord = {
    id: imageId,
    name,
    description: params.str('Description') ?? source.description,
    ownerId: state.accountId,
    state: 'pending',
    architecture: source.architecture,
    creationDate: new Date(),
    rootDeviceName: source.rootDeviceName,
    mappings,
    launchGroupAll: false,
    launchUserIds: new Set(),
    tags: imageTags,
    sshUser: source.sshUser,
    sourceImageId: source.id,
    sourceImageRegion: sourceRegionName,
    bootMode: source.bootMode,
  };
  region.images.set(imageId, image);
  for (const { snapshot } of pairs) region.snapshots.set(snapshot.id, snapshot);
  rememberResult(ctx, 'CopyImage', token, imageId);
  copyImageSnapshots(state, image, pairs);
  return { imageId };
};

function checkPermissionItem(group: string | undefined, userId: string | undefined): void {
  if (group !== undefined && group !== 'all') {
    throw new Ec2Error('InvalidAMIAttributeItemValue', `Invalid attribute item value "${group}" for group item type.`);
  }
  if (userId !== undefined && !/^\d{12}$/.test(userId)) {
    throw new Ec2Error('InvalidAMIAttributeItemValue', `Invalid attribute item value "${userId}" for userId item type.`);
  }
}

const modifyImageAttribute: ActionHandler = (ctx) => {
  const { state, region, params } = ctx;
  const image = state.getOwnImage(region, params.required('ImageId'));
  const changes: Array<{ add: boolean; group?: string; userId?: string }> = [];
  const launch = params.struct('LaunchPermission');
  for (const [list, add] of [
    ['Add', true],
    ['Remove', false],
  ] as const) {
    for (const item of launch?.structs(list) ?? []) {
      changes.push({ add, group: item.str('Group'), userId: item.str('UserId') });
    }
  }
  const attribute = params.str('Attribute');
  if (attribute === 'launchPermission' || params.has('OperationType')) {
    const op = params.required('OperationType');
    if (op !== 'add' && op !== 'remove') {
      throw new Ec2Error('InvalidParameterValue', `Value (${op}) for parameter operationType is invalid.`);
    }
    for (const group of params.strings('UserGroup')) changes.push({ add: op === 'add', group });
    for (const userId of params.strings('UserId')) changes.push({ add: op === 'add', userId });
  }
  const description = params.struct('Description')?.str('Value') ?? (attribute === 'description' ? params.str('Value') : undefined);
  if (!changes.length && description === undefined) {
    throw new Ec2Error('MissingParameter', 'No attributes specified.');
  }
  for (const c of changes) checkPermissionItem(c.group, c.userId);
  for (const c of changes) {
    if (c.group) image.launchGroupAll = c.add;
    if (c.userId) {
      if (c.add) image.launchUserIds.add(c.userId);
      else image.launchUserIds.delete(c.userId);
    }
  }
  if (description !== undefined) image.description = description;
  return { return: true };
};

const describeImageAttribute: ActionHandler = (ctx) => {
  const { state, region, params } = ctx;
  const attribute = params.required('Attribute');
  const image = state.getOwnImage(region, params.required('ImageId'));
  const base = { imageId: image.id };
  switch (attribute) {
    case 'launchPermission':
      return {
        ...base,
        launchPermission: [
          ...(image.launchGroupAll ? [{ group: 'all' }] : []),
          ...[...image.launchUserIds].map((userId) => ({ userId })),
        ],
      };
    case 'description':
      return { ...base, description: { value: image.description } };
    case 'blockDeviceMapping':
      return { ...base, blockDeviceMapping: image.mappings.map(imageMappingXml) };
    case 'bootMode':
      return { ...base, bootMode: { value: image.bootMode } };
    default:
      throw new Ec2Error('InvalidParameterValue', `Value (${attribute}) for parameter attribute is invalid. Unknown attribute.`);
  }
};

export const imageActions: Record<string, ActionHandler> = {
  DescribeImages: describeImages,
  CreateImage: createImage,
  DeregisterImage: deregisterImage,
  CopyImage: copyImage,
  ModifyImageAttribute: modifyImageAttribute,
  DescribeImageAttribute: describeImageAttribute,
};
