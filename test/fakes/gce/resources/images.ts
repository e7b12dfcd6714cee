/**
 * images: get, getFromFamily, list, insert (from a source disk or image), delete, deprecate,
 * setLabels, getIamPolicy, setIamPolicy. An inserted image is PENDING until the disk snapshot is
 * taken (MachineBackend.snapshotDisk) and the `image.ready` delay passes, then READY.
 */
import type { Call, Handler } from '../core.js';
import { param, queryFlag } from '../core.js';
import { alreadyExists, badRequest, conditionNotMet, inUseBy, invalidField, notFound, notReady, required } from '../errors.js';
import { checkFingerprint, checkLabels, fingerprint } from '../fields.js';
import { checkName, globalPath, globalRef, link, zonalRef } from '../links.js';
import { listPage } from '../list.js';
import { renderOperation } from '../operations.js';
import type { DeprecationStatus, GceState, IamBinding, ImageRecord } from '../state.js';

export const IMAGE_READY = 'image.ready';
export const IMAGE_DELETED = 'image.deleted';

export function renderImage(state: GceState, r: ImageRecord): Record<string, unknown> {
  return {
    kind: 'compute#image',
    id: r.id,
    creationTimestamp: r.creationTimestamp,
    name: r.name,
    ...(r.description ? { description: r.description } : {}),
    sourceType: 'RAW',
    status: r.status,
    archiveSizeBytes: String(r.archiveSizeBytes),
    diskSizeGb: String(r.diskSizeGb),
    ...(r.sourceDisk ? { sourceDisk: r.sourceDisk, sourceDiskId: r.sourceDiskId } : {}),
    ...(r.sourceImage ? { sourceImage: r.sourceImage, sourceImageId: r.sourceImageId } : {}),
    licenses: r.licenses,
    ...(r.family ? { family: r.family } : {}),
    ...(r.deprecated ? { deprecated: r.deprecated } : {}),
    selfLink: state.imageLink(r),
    labels: Object.keys(r.labels).length > 0 ? r.labels : undefined,
    labelFingerprint: fingerprint(r.labels),
    guestOsFeatures: r.guestOsFeatures.map((type) => ({ type })),
    storageLocations: r.storageLocations,
    architecture: r.architecture,
  };
}

const imagePath = (project: string, name: string) => globalPath(project, 'images', name);

export function requireImage(state: GceState, project: string, name: string): ImageRecord {
  const image = state.getImage(project, name);
  if (!image) throw notFound(imagePath(project, name));
  return image;
}

const isDeprecated = (r: ImageRecord) => r.deprecated !== undefined && r.deprecated.state !== 'ACTIVE';

/** The newest READY, non-deprecated image of a family, as images.getFromFamily resolves it. */
export function imageFromFamily(state: GceState, project: string, family: string): ImageRecord | undefined {
  return [...state.images.values()]
    .filter((i) => i.project === project && i.family === family && i.status === 'READY' && !isDeprecated(i))
    .sort((a, b) => Date.parse(b.creationTimestamp) - Date.parse(a.creationTimestamp))[0];
}

export const getImage: Handler = ({ state }, call) =>
  renderImage(state, requireImage(state, param(call, 'project'), param(call, 'image')));

export const getImageFromFamily: Handler = ({ state }, call) => {
  const project = param(call, 'project');
  const family = param(call, 'family');
  const image = imageFromFamily(state, project, family);
  if (!image) throw notFound(`projects/${project}/global/images/family/${family}`);
  return renderImage(state, image);
};

export const listImages: Handler = ({ state }, call) => {
  const project = param(call, 'project');
  const items = [...state.images.values()].filter((i) => i.project === project).map((i) => renderImage(state, i));
  return {
    kind: 'compute#imageList',
    id: `projects/${project}/global/images`,
    ...listPage(call, items),
    selfLink: link(`projects/${project}/global/images`),
  };
};

function checkStorageLocations(value: unknown): string[] {
  if (value === undefined) return ['us'];
  if (!Array.isArray(value) || value.length !== 1 || typeof value[0] !== 'string' || !/^[a-z0-9-]+$/.test(value[0])) {
    throw invalidField('resource.storageLocations', value, 'Exactly one storage location (a region or multi-region) must be given.');
  }
  return [value[0]];
}

export const insertImage: Handler = (core, call) => {
  const { state, operations, machines } = core;
  const project = param(call, 'project');
  const body = call.body;
  const name = checkName('resource.name', body.name);
  if (state.getImage(project, name)) throw alreadyExists(imagePath(project, name));
  const labels = checkLabels('resource.labels', body.labels);
  if (body.family !== undefined) checkName('resource.family', body.family);
  const storageLocations = checkStorageLocations(body.storageLocations);

  let sourceSnapshot: string;
  const record: ImageRecord = {
    project,
    name,
    id: state.ids.id(),
    creationTimestamp: state.now(),
    status: 'PENDING',
    family: body.family as string | undefined,
    description: typeof body.description === 'string' ? body.description : undefined,
    labels,
    diskSizeGb: 0,
    archiveSizeBytes: 0,
    storageLocations,
    architecture: 'X86_64',
    guestOsFeatures: Array.isArray(body.guestOsFeatures)
      ? (body.guestOsFeatures as { type?: string }[]).map((f) => String(f.type))
      : [],
    licenses: Array.isArray(body.licenses) ? (body.licenses as string[]) : [],
    iam: state.newIamPolicy(),
    snapshotId: '',
    seeded: false,
  };
  record.snapshotId = `image-${name}-${record.id}`;

  if (body.sourceDisk !== undefined) {
    const ref = zonalRef('resource.sourceDisk', body.sourceDisk, 'disks', project);
    const disk = state.getDisk(ref.project, ref.zone, ref.name);
    if (!disk) throw notFound(`projects/${ref.project}/zones/${ref.zone}/disks/${ref.name}`);
    if (disk.status !== 'READY') throw notReady(`projects/${ref.project}/zones/${ref.zone}/disks/${ref.name}`);
    const busy = disk.users
      .map((u) => [...state.instances.values()].find((i) => state.instanceLink(i) === u))
      .find((i) => i && i.status !== 'TERMINATED');
    if (busy && !queryFlag(call, 'forceCreate')) {
      throw inUseBy(`projects/${ref.project}/zones/${ref.zone}/disks/${ref.name}`, `projects/${busy.project}/zones/${busy.zone}/instances/${busy.name}`);
    }
    record.sourceDisk = state.diskLink(disk);
    record.sourceDiskId = disk.id;
    record.diskSizeGb = disk.sizeGb;
    record.architecture = disk.architecture ?? 'X86_64';
    sourceSnapshot = disk.backendId;
  } else if (body.sourceImage !== undefined) {
    const ref = globalRef('resource.sourceImage', body.sourceImage, 'images', project);
    const source = ref.family ? imageFromFamily(state, ref.project, ref.family) : state.getImage(ref.project, ref.name);
    if (!source) throw notFound(imagePath(ref.project, ref.family ? `family/${ref.family}` : ref.name));
    record.sourceImage = state.imageLink(source);
    record.sourceImageId = source.id;
    record.diskSizeGb = source.diskSizeGb;
    record.licenses = record.licenses.length > 0 ? record.licenses : source.licenses;
    sourceSnapshot = '';
    record.snapshotId = source.snapshotId;
  } else {
    throw required('resource.sourceDisk');
  }
  record.archiveSizeBytes = record.diskSizeGb * 150_000_000;
  state.putImage(record);

  const op = operations.start(
    { project, operationType: 'insert', targetLink: state.imageLink(record), targetId: record.id },
    call,
    {
      run: async () => {
        if (sourceSnapshot) await machines.snapshotDisk(sourceSnapshot, record.snapshotId);
        await operations.after(IMAGE_READY);
        record.status = 'READY';
      },
      rollback: () => state.dropImage(record),
    },
  );
  return renderOperation(op);
};

export const deleteImage: Handler = (core, call) => {
  const { state, operations, machines } = core;
  const record = requireImage(state, param(call, 'project'), param(call, 'image'));
  const ownsSnapshot = record.sourceDisk !== undefined;
  const op = operations.start(
    { project: record.project, operationType: 'delete', targetLink: state.imageLink(record), targetId: record.id },
    call,
    {
      run: async () => {
        record.status = 'DELETING';
        await operations.after(IMAGE_DELETED);
        if (ownsSnapshot) await machines.deleteSnapshot(record.snapshotId);
        state.dropImage(record);
      },
    },
  );
  return renderOperation(op);
};

const DEPRECATION_STATES = ['ACTIVE', 'DEPRECATED', 'OBSOLETE', 'DELETED'];

export const deprecateImage: Handler = (core, call) => {
  const { state, operations } = core;
  const record = requireImage(state, param(call, 'project'), param(call, 'image'));
  const body = call.body as Partial<Record<keyof DeprecationStatus, unknown>>;
  const stateValue = body.state ?? 'ACTIVE';
  if (typeof stateValue !== 'string' || !DEPRECATION_STATES.includes(stateValue)) {
    throw invalidField('deprecationStatus.state', stateValue, `Must be one of ${DEPRECATION_STATES.join(', ')}.`);
  }
  let replacement: string | undefined;
  if (body.replacement !== undefined && body.replacement !== '') {
    const ref = globalRef('deprecationStatus.replacement', body.replacement, 'images', record.project);
    replacement = state.imageLink(requireImage(state, ref.project, ref.name));
  }
  for (const field of ['deprecated', 'obsolete', 'deleted'] as const) {
    const v = body[field];
    if (v !== undefined && (typeof v !== 'string' || Number.isNaN(Date.parse(v)))) {
      throw invalidField(`deprecationStatus.${field}`, v, 'Must be an RFC 3339 timestamp.');
    }
  }
  const op = operations.start(
    { project: record.project, operationType: 'deprecate', targetLink: state.imageLink(record), targetId: record.id },
    call,
    {
      run: async () => {
        if (stateValue === 'ACTIVE') {
          record.deprecated = undefined;
          return;
        }
        record.deprecated = {
          state: stateValue as DeprecationStatus['state'],
          ...(replacement ? { replacement } : {}),
          ...(typeof body.deprecated === 'string' ? { deprecated: body.deprecated } : {}),
          ...(typeof body.obsolete === 'string' ? { obsolete: body.obsolete } : {}),
          ...(typeof body.deleted === 'string' ? { deleted: body.deleted } : {}),
        };
      },
    },
  );
  return renderOperation(op);
};

export const setImageLabels: Handler = (core, call) => {
  const { state, operations } = core;
  const record = requireImage(state, param(call, 'project'), param(call, 'resource'));
  const labels = checkLabels('labels', call.body.labels);
  checkFingerprint(call.body.labelFingerprint, fingerprint(record.labels), 'Labels');
  const op = operations.start(
    { project: record.project, operationType: 'setLabels', targetLink: state.imageLink(record), targetId: record.id },
    call,
    { run: async () => void (record.labels = labels) },
  );
  return renderOperation(op);
};

const renderPolicy = (r: ImageRecord) => ({
  version: r.iam.version,
  etag: r.iam.etag,
  ...(r.iam.bindings.length > 0 ? { bindings: r.iam.bindings } : {}),
});

export const getImageIamPolicy: Handler = ({ state }, call) =>
  renderPolicy(requireImage(state, param(call, 'project'), param(call, 'resource')));

const MEMBER = /^(?:allUsers|allAuthenticatedUsers|(?:user|serviceAccount|group|domain|principal|principalSet):.+)$/;

function checkBindings(value: unknown): IamBinding[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw badRequest('Invalid policy: bindings must be a list.');
  return value.map((b: unknown) => {
    const { role, members } = (b ?? {}) as { role?: unknown; members?: unknown };
    if (typeof role !== 'string' || !/^(?:roles|projects\/[^/]+\/roles|organizations\/[^/]+\/roles)\/.+/.test(role)) {
      throw badRequest(`Role ${JSON.stringify(role)} is not supported for this resource.`);
    }
    if (!Array.isArray(members) || members.length === 0) throw badRequest(`Binding for ${role} has no members.`);
    for (const m of members) {
      if (typeof m !== 'string' || !MEMBER.test(m)) throw badRequest(`Invalid member ${JSON.stringify(m)} in binding for ${role}.`);
    }
    return { role, members: [...(members as string[])] };
  });
}

export const setImageIamPolicy: Handler = ({ state }, call: Call) => {
  const record = requireImage(state, param(call, 'project'), param(call, 'resource'));
  const policy = (call.body.policy ?? {}) as { bindings?: unknown; etag?: unknown; version?: unknown };
  const bindings = checkBindings(policy.bindings ?? call.body.bindings);
  const etag = policy.etag ?? call.body.etag;
  if (etag !== undefined && etag !== '' && etag !== record.iam.etag) {
    throw conditionNotMet('There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.');
  }
  record.iam = state.newIamPolicy(bindings, typeof policy.version === 'number' ? policy.version : 1);
  return renderPolicy(record);
};
