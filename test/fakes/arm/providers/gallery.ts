/**
 * Azure Compute Gallery: galleries, image definitions (`galleries/images`) and image versions
 * (`galleries/images/versions`).
 *
 *  - A gallery's name may hold only letters, digits, periods and underscores (400 InvalidParameter).
 *  - A definition needs its gallery (404 ParentResourceNotFound), the gallery's region, osType,
 *    osState, identifier {publisher, offer, sku}; hyperVGeneration defaults to V1. osType, osState,
 *    identifier and hyperVGeneration cannot change (409 PropertyChangeNotAllowed).
 *  - A version needs its definition, a Major.Minor.Patch name, a source (`storageProfile.source.id`
 *    = managed image or VM, or `source.virtualMachineId`) in its region with the definition's
 *    hyperVGeneration (a VM source must be generalized for a Generalized definition), and target
 *    regions that include its own region. It is `Creating` until the source's disks are copied
 *    (`galleryImageVersion.create` step) and every target region replicated: each region goes
 *    Replicating 0% -> 50% -> Completed 100% over two `galleryImageVersion.replicate` steps, and an
 *    interceptor on that step fails one region (`ctx.region`), which fails the version. GET with
 *    `$expand=ReplicationStatus` serves `replicationStatus`.
 *  - PUT on an existing version may change tags and target regions (new regions replicate after
 *    the `galleryImageVersion.update` step); its source cannot change.
 *  - Deleting a gallery that has definitions, or a definition that has versions, is 409
 *    CannotDeleteResource.
 */
import { randomUUID } from 'node:crypto';
import { ArmError, armErrors, asArmError } from '../errors.js';
import type { ArmStep } from '../hooks.js';
import {
  arr,
  backendError,
  gone,
  newRecord,
  num,
  obj,
  props,
  requireLocation,
  startLro,
  str,
  tagsOf,
  trackedJson,
  type Core,
  type Json,
  type RequestContext,
  type ResourceKind,
  type ResourceRef,
} from '../kinds.js';
import type { ResourceRecord } from '../state.js';
import { capture, releaseSnapshots } from './disks.js';
import {
  C,
  GALLERY_API_VERSIONS,
  type CapturedImage,
  type ImageInternal,
  type RegionState,
  type VersionInternal,
  type VmInternal,
} from './compute-common.js';

const normalRegion = (name: string): string => name.toLowerCase().replace(/\s+/g, '');

/** PUT flow shared by the three gallery types: Creating/Updating, then Succeeded after `step`. */
function galleryPut(core: Core, ctx: RequestContext, kind: ResourceKind, rec: ResourceRecord, existed: boolean, step: ArmStep, work?: () => Promise<void>) {
  rec.properties.provisioningState = existed ? 'Updating' : 'Creating';
  core.state.put(rec);
  return startLro(core, ctx, rec, {
    step,
    status: existed ? 200 : 201,
    body: kind.serialize(rec, ctx),
    work: async () => {
      await core.steps.wait(step, { resourceId: rec.id });
      if (!core.state.isLive(rec)) throw gone(rec.id);
      await work?.();
      rec.properties.provisioningState = 'Succeeded';
    },
    onFailure: () => {
      rec.properties.provisioningState = 'Failed';
    },
  });
}

function galleryDelete(core: Core, ctx: RequestContext, rec: ResourceRecord, step: ArmStep, nestedType?: string) {
  if (nestedType) {
    const nested = core.state.children(rec.id, nestedType);
    if (nested.length) throw armErrors.cannotDeleteNested(nested.map((n) => n.id.split('/providers/')[1] ?? n.id));
  }
  rec.properties.provisioningState = 'Deleting';
  return startLro(core, ctx, rec, {
    step,
    status: 202,
    location: true,
    work: async () => {
      await core.steps.wait(step, { resourceId: rec.id });
      const internal = rec.internal as Partial<ImageInternal> | undefined;
      if (internal?.snapshots) await releaseSnapshots(core, internal as ImageInternal);
      if (core.state.isLive(rec)) core.state.remove(rec.id);
    },
  });
}

const immutable = (label: string, now: unknown, before: unknown): void => {
  if (now !== undefined && JSON.stringify(now) !== JSON.stringify(before)) {
    throw armErrors.conflict(`Changing property '${label}' is not allowed.`, 'PropertyChangeNotAllowed');
  }
};

function requireParent(core: Core, ref: ResourceRef): ResourceRecord {
  const parent = core.state.get(ref.parentId);
  if (!parent) throw armErrors.parentNotFound(ref.type, ref.parentId ?? '');
  return parent;
}

export function galleryKinds(core: Core): ResourceKind[] {
  const gallery: ResourceKind = {
    type: C.gallery,
    operationGroup: 'galleries',
    apiVersions: GALLERY_API_VERSIONS,
    tracked: true,
    purgeOrder: 50,
    serialize: trackedJson,
    put: (ctx, ref) => {
      core.state.requireGroup(ref.resourceGroup, true);
      if (!/^[A-Za-z0-9](?:[A-Za-z0-9._]{0,78}[A-Za-z0-9])?$/.test(ref.name)) {
        throw armErrors.invalidParameter(
          `The gallery name '${ref.name}' is not valid. It can contain only English letters, numbers, underscores and periods, and must begin and end with a letter or number.`,
          'galleryName',
        );
      }
      const location = requireLocation(ctx.body);
      const existing = core.state.get(ref.id);
      if (existing && existing.location !== location) throw armErrors.invalidParameter('The location of a gallery cannot change.', 'location');
      const description = str(props(ctx.body).description);
      const rec = newRecord(ref, {
        location,
        tags: tagsOf(ctx.body),
        tracked: true,
        internal: undefined,
        properties: {
          ...(description ? { description } : {}),
          identifier: { uniqueName: `${core.state.subscriptionId}-${ref.name.toUpperCase()}` },
        },
      });
      return galleryPut(core, ctx, gallery, rec, Boolean(existing), 'gallery.create');
    },
    delete: (ctx, rec) => galleryDelete(core, ctx, rec, 'gallery.delete', C.galleryImage),
  };

  const definition: ResourceKind = {
    type: C.galleryImage,
    operationGroup: 'galleryImages',
    apiVersions: GALLERY_API_VERSIONS,
    tracked: true,
    purgeOrder: 40,
    serialize: trackedJson,
    put: (ctx, ref) => {
      core.state.requireGroup(ref.resourceGroup, true);
      const parent = requireParent(core, ref);
      const location = requireLocation(ctx.body);
      if (location !== parent.location) throw armErrors.invalidParameter(`The gallery image must be in the gallery's region '${parent.location}'.`, 'location');
      const p = props(ctx.body);
      const pick = (field: string, allowed: string[], fallback?: string): string => {
        const value = str(p[field]) ?? fallback;
        const match = allowed.find((a) => a.toLowerCase() === value?.toLowerCase());
        if (!match) throw armErrors.invalidParameter(`The value '${String(value)}' of ${field} is not valid; use one of ${allowed.join(', ')}.`, field);
        return match;
      };
      const osType = pick('osType', ['Linux', 'Windows']);
      const osState = pick('osState', ['Generalized', 'Specialized']);
      const hyperVGeneration = pick('hyperVGeneration', ['V1', 'V2'], 'V1');
      const architecture = pick('architecture', ['x64', 'Arm64'], 'x64');
      const id = obj(p.identifier);
      const identifier = { publisher: str(id.publisher), offer: str(id.offer), sku: str(id.sku) };
      if (!identifier.publisher || !identifier.offer || !identifier.sku) {
        throw armErrors.invalidParameter('The gallery image identifier needs publisher, offer and sku.', 'identifier');
      }
      const existing = core.state.get(ref.id);
      if (existing) {
        for (const [label, now] of Object.entries({ osType, osState, hyperVGeneration, identifier })) immutable(label, now, existing.properties[label]);
      }
      const clash = core.state
        .children(parent.id, C.galleryImage)
        .find((s) => s !== existing && JSON.stringify(s.properties.identifier).toLowerCase() === JSON.stringify(identifier).toLowerCase());
      if (clash) throw armErrors.conflict(`Gallery image ${clash.name} already uses identifier ${Object.values(identifier).join('/')}.`);
      const description = str(p.description);
      const rec = newRecord(ref, {
        location,
        tags: tagsOf(ctx.body),
        tracked: true,
        internal: undefined,
        properties: { osType, osState, hyperVGeneration, architecture, identifier, ...(description ? { description } : {}) },
      });
      return galleryPut(core, ctx, definition, rec, Boolean(existing), 'galleryImage.create');
    },
    delete: (ctx, rec) => galleryDelete(core, ctx, rec, 'galleryImage.delete', C.galleryVersion),
  };

  const version: ResourceKind = {
    type: C.galleryVersion,
    operationGroup: 'galleryImageVersions',
    apiVersions: GALLERY_API_VERSIONS,
    tracked: true,
    purgeOrder: 30,
    serialize: (rec, ctx) => {
      const json = trackedJson(rec);
      if (/replicationstatus/i.test(ctx?.query.get('$expand') ?? '')) {
        (json.properties as Json).replicationStatus = replicationStatus(rec as ResourceRecord<VersionInternal>);
      }
      return json;
    },
    put: (ctx, ref) => putVersion(core, ctx, ref, version),
    delete: (ctx, rec) => galleryDelete(core, ctx, rec, 'galleryImageVersion.delete'),
    purge: (rec) => releaseSnapshots(core, (rec as ResourceRecord<VersionInternal>).internal),
  };

  return [gallery, definition, version];
}

function putVersion(core: Core, ctx: RequestContext, ref: ResourceRef, kind: ResourceKind) {
  core.state.requireGroup(ref.resourceGroup, true);
  const definition = requireParent(core, ref);
  if (!/^\d{1,9}\.\d{1,9}\.\d{1,9}$/.test(ref.name)) {
    throw armErrors.invalidParameter(`The gallery image version name '${ref.name}' is invalid. It must follow the Major(int).Minor(int).Patch(int) format.`, 'galleryImageVersionName');
  }
  const location = requireLocation(ctx.body);
  if (location !== definition.location) throw armErrors.invalidParameter(`The gallery image version must be in the gallery's region '${definition.location}'.`, 'location');
  const p = props(ctx.body);
  const pp = obj(p.publishingProfile);
  const source = obj(obj(p.storageProfile).source);
  const sourceId = str(source.virtualMachineId) ?? str(source.id);
  const existing = core.state.get<VersionInternal>(ref.id);
  if (existing) {
    const before = obj(obj(existing.properties.storageProfile).source);
    immutable('storageProfile.source', sourceId?.toLowerCase(), (str(before.virtualMachineId) ?? str(before.id))?.toLowerCase());
  }

  // target regions
  const defaultCount = num(pp.replicaCount) ?? 1;
  const defaultStorage = str(pp.storageAccountType) ?? 'Standard_LRS';
  const wanted = arr(pp.targetRegions);
  const targets = (wanted.length ? wanted : [{ name: location }]).map((t) => {
    const name = str(t.name);
    if (!name) throw armErrors.invalidParameter('Every target region needs a name.', 'publishingProfile.targetRegions');
    const count = num(t.regionalReplicaCount) ?? defaultCount;
    if (!Number.isInteger(count) || count < 1 || count > 100) {
      throw armErrors.invalidParameter(`regionalReplicaCount ${count} for region ${name} must be between 1 and 100.`, 'publishingProfile.targetRegions.regionalReplicaCount');
    }
    return { name, regionalReplicaCount: count, storageAccountType: str(t.storageAccountType) ?? defaultStorage };
  });
  const keys = targets.map((t) => normalRegion(t.name));
  if (new Set(keys).size !== keys.length) throw armErrors.invalidParameter('A target region is listed twice.', 'publishingProfile.targetRegions');
  if (!keys.includes(location)) {
    throw armErrors.invalidParameter(`The list of target regions must include the region of the gallery image version (${location}).`, 'publishingProfile.targetRegions');
  }
  const publishingProfile: Json = {
    targetRegions: targets,
    replicaCount: defaultCount,
    excludeFromLatest: pp.excludeFromLatest === true,
    storageAccountType: defaultStorage,
    publishedDate: (existing?.properties.publishingProfile as Json | undefined)?.publishedDate ?? new Date().toISOString(),
    ...(str(pp.endOfLifeDate) ? { endOfLifeDate: pp.endOfLifeDate } : {}),
  };

  if (existing) {
    existing.tags = tagsOf(ctx.body);
    existing.properties.publishingProfile = publishingProfile;
    const added = keys.filter((k) => !existing.internal.regions[k]);
    for (const k of Object.keys(existing.internal.regions)) if (!keys.includes(k)) delete existing.internal.regions[k];
    for (const k of added) existing.internal.regions[k] = { state: 'Replicating', progress: 0 };
    return galleryPut(core, ctx, kind, existing, true, 'galleryImageVersion.update', () => replicate(core, existing, added));
  }

  if (!sourceId) throw armErrors.invalidParameter('The gallery image version needs storageProfile.source.', 'storageProfile.source');
  const src = core.state.get(sourceId);
  if (!src || (src.type !== C.image && src.type !== C.vm)) {
    throw armErrors.invalidParameter(`The source '${sourceId}' was not found or is not a managed image or a virtual machine.`, 'storageProfile.source.id');
  }
  if (src.location !== location) throw armErrors.invalidParameter('The source must be in the region of the gallery image version.', 'storageProfile.source.id');
  const wantGen = String(definition.properties.hyperVGeneration);
  let sourceGen: string;
  let sizes: CapturedImage;
  if (src.type === C.image) {
    const image = src as ResourceRecord<ImageInternal>;
    if (!image.internal.captured) throw armErrors.invalidParameter(`The source image '${src.id}' is not ready.`, 'storageProfile.source.id');
    sourceGen = String(image.properties.hyperVGeneration);
    sizes = image.internal.captured;
  } else {
    const vm = src as ResourceRecord<VmInternal>;
    if (vm.internal.power !== 'stopped' && vm.internal.power !== 'deallocated') {
      throw armErrors.operationNotAllowed(`The source virtual machine '${vm.name}' must be stopped or deallocated.`);
    }
    if (definition.properties.osState === 'Generalized' && !vm.internal.generalized) {
      throw armErrors.operationNotAllowed(`The source virtual machine '${vm.name}' is not generalized but the gallery image is Generalized.`);
    }
    const osDiskId = vm.internal.disks.find((d) => d.lun === undefined)?.id;
    sourceGen = String(core.state.get(osDiskId)?.properties.hyperVGeneration ?? 'V1');
    sizes = {
      os: { snapshotId: '', sizeGb: Number(core.state.get(osDiskId)?.properties.diskSizeGB ?? 30) },
      data: vm.internal.disks.filter((d) => d.lun !== undefined).map((d) => ({ lun: d.lun as number, snapshotId: '', sizeGb: Number(core.state.get(d.id)?.properties.diskSizeGB ?? 0) })),
    };
  }
  if (sourceGen !== wantGen) {
    throw armErrors.invalidParameter(`The hyperVGeneration of the source (${sourceGen}) does not match the gallery image's (${wantGen}).`, 'storageProfile.source.id');
  }
  const internal: VersionInternal = { snapshots: [], regions: Object.fromEntries(keys.map((k) => [k, { state: 'Replicating', progress: 0 } as RegionState])) };
  const rec = newRecord<VersionInternal>(ref, {
    location,
    tags: tagsOf(ctx.body),
    tracked: true,
    internal,
    properties: {
      publishingProfile,
      storageProfile: {
        source: src.type === C.vm && str(source.virtualMachineId) ? { virtualMachineId: src.id } : { id: src.id },
        osDiskImage: { sizeInGB: sizes.os.sizeGb, hostCaching: 'ReadWrite' },
        dataDiskImages: sizes.data.map((d) => ({ lun: d.lun, sizeInGB: d.sizeGb, hostCaching: 'None' })),
      },
      safetyProfile: { allowDeletionOfReplicatedLocations: true, reportedForPolicyViolation: false },
    },
  });
  return galleryPut(core, ctx, kind, rec, false, 'galleryImageVersion.create', async () => {
    const captured = src.type === C.image ? await copyImage(core, sizes, internal.snapshots) : await capture(core, src as ResourceRecord<VmInternal>, internal.snapshots);
    if (!core.state.isLive(rec)) {
      await releaseSnapshots(core, internal);
      throw gone(rec.id);
    }
    internal.captured = captured;
    await replicate(core, rec, keys);
  });
}

/** A version owns its disks: copies the image's snapshots (disk from snapshot, snapshot, drop disk). */
async function copyImage(core: Core, from: CapturedImage, taken: string[]): Promise<CapturedImage> {
  const copy = async (snapshotId: string, sizeGb: number): Promise<string> => {
    const tmp = `disk-copy-${randomUUID()}`;
    const snap = `snap-${randomUUID()}`;
    try {
      await core.machines.createDisk(tmp, sizeGb, snapshotId);
      await core.machines.snapshotDisk(tmp, snap);
      taken.push(snap);
      await core.machines.deleteDisk(tmp);
    } catch (e) {
      throw backendError(e);
    }
    return snap;
  };
  const os = { snapshotId: await copy(from.os.snapshotId, from.os.sizeGb), sizeGb: from.os.sizeGb };
  const data: CapturedImage['data'] = [];
  for (const d of from.data) data.push({ lun: d.lun, sizeGb: d.sizeGb, snapshotId: await copy(d.snapshotId, d.sizeGb) });
  return { os, data };
}

/** Replicates to `regions` in parallel; fails with the first region's error if any failed. */
async function replicate(core: Core, rec: ResourceRecord<VersionInternal>, regions: string[]): Promise<void> {
  const errors: ArmError[] = [];
  await Promise.all(
    regions.map(async (region) => {
      const st = rec.internal.regions[region];
      if (!st) return;
      try {
        await core.steps.wait('galleryImageVersion.replicate', { resourceId: rec.id, region });
        st.progress = 50;
        await core.steps.wait('galleryImageVersion.replicate', { resourceId: rec.id, region }, false);
        st.state = 'Completed';
        st.progress = 100;
      } catch (e) {
        const err = asArmError(e);
        st.state = 'Failed';
        st.details = err.message;
        errors.push(err);
      }
    }),
  );
  if (errors[0]) throw errors[0];
}

function replicationStatus(rec: ResourceRecord<VersionInternal>): Json {
  const targets = arr(obj(rec.properties.publishingProfile).targetRegions);
  const display = (key: string): string => str(targets.find((t) => normalRegion(String(t.name)) === key)?.name) ?? key;
  const states = Object.values(rec.internal.regions).map((r) => r.state);
  const aggregatedState = states.includes('Failed') ? 'Failed' : states.every((s) => s === 'Completed') ? 'Completed' : 'InProgress';
  return {
    aggregatedState,
    summary: Object.entries(rec.internal.regions).map(([key, st]) => ({
      region: display(key),
      state: st.state,
      progress: st.progress,
      ...(st.details ? { details: st.details } : {}),
    })),
  };
}
