/**
 * disks: get, list, insert, delete (refused with resourceInUseByAnotherResource while attached),
 * setLabels. A disk is CREATING until MachineBackend.createDisk resolves and the `disk.ready` delay
 * passes, then READY. Disks created by instances.insert use `createDiskRecord` + `materializeDisk`.
 */
import type { GceCore, Handler } from '../core.js';
import { param } from '../core.js';
import { alreadyExists, inUseBy, invalidField, notFound } from '../errors.js';
import { checkFingerprint, checkLabels, fingerprint, int64, type Labels } from '../fields.js';
import { checkName, checkZone, globalRef, link, zonalPath, zonalRef, zonePath } from '../links.js';
import { aggregatedPage, listPage } from '../list.js';
import { renderOperation } from '../operations.js';
import type { DiskRecord, GceState, ImageRecord } from '../state.js';
import { imageFromFamily } from './images.js';

export const DISK_READY = 'disk.ready';
export const DISK_DELETED = 'disk.deleted';

export const DISK_TYPES = ['pd-standard', 'pd-balanced', 'pd-ssd', 'pd-extreme', 'hyperdisk-balanced'];

export function renderDisk(state: GceState, d: DiskRecord): Record<string, unknown> {
  return {
    kind: 'compute#disk',
    id: d.id,
    creationTimestamp: d.creationTimestamp,
    name: d.name,
    sizeGb: String(d.sizeGb),
    zone: link(zonePath(d.project, d.zone)),
    status: d.status,
    selfLink: state.diskLink(d),
    ...(d.sourceImage ? { sourceImage: d.sourceImage, sourceImageId: d.sourceImageId } : {}),
    type: link(zonalPath(d.project, d.zone, 'diskTypes', d.type)),
    labels: Object.keys(d.labels).length > 0 ? d.labels : undefined,
    labelFingerprint: fingerprint(d.labels),
    ...(d.lastAttachTimestamp ? { lastAttachTimestamp: d.lastAttachTimestamp } : {}),
    ...(d.lastDetachTimestamp ? { lastDetachTimestamp: d.lastDetachTimestamp } : {}),
    ...(d.users.length > 0 ? { users: d.users } : {}),
    physicalBlockSizeBytes: '4096',
    ...(d.architecture ? { architecture: d.architecture } : {}),
  };
}

const diskPath = (project: string, zone: string, name: string) => zonalPath(project, zone, 'disks', name);

export function requireDisk(state: GceState, project: string, zone: string, name: string): DiskRecord {
  checkZone(zone);
  const disk = state.getDisk(project, zone, name);
  if (!disk) throw notFound(diskPath(project, zone, name));
  return disk;
}

/** Resolves `sourceImage` (image or family reference) to a usable image, as disk creation does. */
export function resolveSourceImage(state: GceState, field: string, ref: unknown, project: string): ImageRecord {
  const parsed = globalRef(field, ref, 'images', project);
  const image = parsed.family
    ? imageFromFamily(state, parsed.project, parsed.family)
    : state.getImage(parsed.project, parsed.name);
  if (!image) throw invalidField(field, ref, 'The referenced image resource cannot be found.');
  if (image.status !== 'READY') throw invalidField(field, ref, 'The referenced image resource is not ready.');
  if (image.deprecated?.state === 'OBSOLETE' || image.deprecated?.state === 'DELETED') {
    throw invalidField(field, ref, `The referenced image resource is ${image.deprecated.state.toLowerCase()}.`);
  }
  return image;
}

export interface DiskParams {
  project: string;
  zone: string;
  name: string;
  sizeGb?: number;
  type?: unknown;
  sourceImage?: unknown;
  labels?: Labels;
  /** Field prefix for error messages, e.g. `resource.disks[1].initializeParams`. */
  field: string;
}

/** Validates and builds a CREATING disk record (not stored yet). */
export function createDiskRecord(state: GceState, p: DiskParams): { disk: DiskRecord; image?: ImageRecord } {
  checkName(`${p.field}.diskName`, p.name);
  if (state.getDisk(p.project, p.zone, p.name)) throw alreadyExists(diskPath(p.project, p.zone, p.name));
  let type = 'pd-standard';
  if (p.type !== undefined) {
    const ref = zonalRef(`${p.field}.diskType`, p.type, 'diskTypes', p.project);
    if (ref.zone !== p.zone) throw invalidField(`${p.field}.diskType`, p.type, 'Disk type must be in the zone of the disk.');
    if (!DISK_TYPES.includes(ref.name)) throw invalidField(`${p.field}.diskType`, p.type, `Disk type '${ref.name}' does not exist.`);
    type = ref.name;
  }
  const image = p.sourceImage !== undefined ? resolveSourceImage(state, `${p.field}.sourceImage`, p.sourceImage, p.project) : undefined;
  const sizeGb = p.sizeGb ?? image?.diskSizeGb ?? 500;
  if (image && sizeGb < image.diskSizeGb) {
    throw invalidField(`${p.field}.diskSizeGb`, String(sizeGb), `Requested disk size cannot be smaller than the image size (${image.diskSizeGb} GB)`);
  }
  if (sizeGb < 1 || sizeGb > 65_536) throw invalidField(`${p.field}.diskSizeGb`, String(sizeGb), 'Disk size must be between 1 and 65536 GB.');
  const id = state.ids.id();
  const disk: DiskRecord = {
    project: p.project,
    zone: p.zone,
    name: p.name,
    id,
    creationTimestamp: state.now(),
    status: 'CREATING',
    sizeGb,
    type,
    labels: p.labels ?? {},
    users: [],
    backendId: `disk-${p.name}-${id}`,
    ...(image ? { sourceImage: state.imageLink(image), sourceImageId: image.id, architecture: image.architecture } : {}),
  };
  return { disk, image };
}

/** Backs a CREATING disk with the MachineBackend, then marks it READY after `disk.ready`. */
export async function materializeDisk(core: GceCore, disk: DiskRecord, image?: ImageRecord): Promise<void> {
  await core.machines.createDisk(disk.backendId, disk.sizeGb, image?.snapshotId);
  await core.operations.after(DISK_READY);
  disk.status = 'READY';
}

export const getDisk: Handler = ({ state }, call) =>
  renderDisk(state, requireDisk(state, param(call, 'project'), param(call, 'zone'), param(call, 'disk')));

export const listDisks: Handler = ({ state }, call) => {
  const project = param(call, 'project');
  const zone = param(call, 'zone');
  checkZone(zone);
  const items = [...state.disks.values()]
    .filter((d) => d.project === project && d.zone === zone)
    .map((d) => renderDisk(state, d));
  return {
    kind: 'compute#diskList',
    id: `${zonePath(project, zone)}/disks`,
    ...listPage(call, items),
    selfLink: link(`${zonePath(project, zone)}/disks`),
  };
};

export const aggregatedListDisks: Handler = ({ state }, call) => {
  const project = param(call, 'project');
  const items = [...state.disks.values()].filter((d) => d.project === project).map((d) => ({ scope: `zones/${d.zone}`, item: renderDisk(state, d) }));
  return {
    kind: 'compute#diskAggregatedList',
    id: `projects/${project}/aggregated/disks`,
    ...aggregatedPage(call, 'disks', items),
    selfLink: link(`projects/${project}/aggregated/disks`),
  };
};

export const insertDisk: Handler = (core, call) => {
  const { state, operations } = core;
  const project = param(call, 'project');
  const zone = param(call, 'zone');
  checkZone(zone);
  const body = call.body;
  const { disk, image } = createDiskRecord(state, {
    project,
    zone,
    name: body.name as string,
    sizeGb: body.sizeGb === undefined ? undefined : int64('resource.sizeGb', body.sizeGb),
    type: body.type,
    sourceImage: body.sourceImage,
    labels: checkLabels('resource.labels', body.labels),
    field: 'resource',
  });
  state.putDisk(disk);
  const op = operations.start(
    { project, zone, operationType: 'insert', targetLink: state.diskLink(disk), targetId: disk.id },
    call,
    { run: () => materializeDisk(core, disk, image), rollback: () => state.dropDisk(disk) },
  );
  return renderOperation(op);
};

export const deleteDisk: Handler = (core, call) => {
  const { state, operations, machines } = core;
  const disk = requireDisk(state, param(call, 'project'), param(call, 'zone'), param(call, 'disk'));
  const user = disk.users[0];
  if (user) throw inUseBy(diskPath(disk.project, disk.zone, disk.name), user.replace(/^.*\/compute\/v1\//, ''));
  const op = operations.start(
    { project: disk.project, zone: disk.zone, operationType: 'delete', targetLink: state.diskLink(disk), targetId: disk.id },
    call,
    {
      run: async () => {
        disk.status = 'DELETING';
        await operations.after(DISK_DELETED);
        await machines.deleteDisk(disk.backendId);
        state.dropDisk(disk);
      },
    },
  );
  return renderOperation(op);
};

export const setDiskLabels: Handler = (core, call) => {
  const { state, operations } = core;
  const disk = requireDisk(state, param(call, 'project'), param(call, 'zone'), param(call, 'resource'));
  const labels = checkLabels('labels', call.body.labels);
  checkFingerprint(call.body.labelFingerprint, fingerprint(disk.labels), 'Labels');
  const op = operations.start(
    { project: disk.project, zone: disk.zone, operationType: 'setLabels', targetLink: state.diskLink(disk), targetId: disk.id },
    call,
    { run: async () => void (disk.labels = labels) },
  );
  return renderOperation(op);
};
