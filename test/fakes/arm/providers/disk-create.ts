/**
 * PUT Microsoft.Compute/disks: a managed disk on its own, as a customer keeps a data disk or makes an
 * OS disk from an image. `creationData.createOption` Empty (needs diskSizeGB) or FromImage from a
 * managed image (`imageReference.id`, a "user image") or a gallery image version
 * (`galleryImageReference.id`), its OS disk or, with `lun`, one of its data disks; a disk from an
 * OS disk carries osType and the image's hyperVGeneration. Other create options (Copy, Import,
 * Upload, Restore) answer 501. The disk is Creating until the `disk.create` step, then the backend
 * makes it (from the image's snapshot). PUT on an existing disk may change tags only.
 */
import { randomUUID } from 'node:crypto';
import { ArmError, armErrors } from '../errors.js';
import {
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
  type Core,
  type Json,
  type RequestContext,
  type ResourceKind,
  type ResourceRef,
} from '../kinds.js';
import { resolveImage, STORAGE_ACCOUNT_TYPES, type DiskInternal } from './compute-common.js';

const MAX_DISK_GB = 32767;

interface DiskSource {
  sizeGb: number;
  snapshot?: string;
  /** Only for a disk made from an image's OS disk. */
  os?: { hyperVGeneration: 'V1' | 'V2' };
  creationData: Json;
}

export function putDisk(core: Core, kind: ResourceKind, ctx: RequestContext, ref: ResourceRef) {
  core.state.requireGroup(ref.resourceGroup, true);
  const location = requireLocation(ctx.body);
  const p = props(ctx.body);
  const existing = core.state.get<DiskInternal>(ref.id);
  if (existing) {
    const option = str(obj(p.creationData).createOption);
    if (option && option.toLowerCase() !== String(obj(existing.properties.creationData).createOption).toLowerCase()) {
      throw armErrors.conflict("Changing property 'creationData.createOption' is not allowed.", 'PropertyChangeNotAllowed');
    }
    existing.tags = tagsOf(ctx.body);
    return { status: 200, body: kind.serialize(existing, ctx) };
  }

  const source = diskSource(core, p, location);
  const storageAccountType = str(obj(ctx.body.sku).name) ?? 'Standard_LRS';
  if (!STORAGE_ACCOUNT_TYPES.includes(storageAccountType)) {
    throw armErrors.invalidParameter(`Storage account type '${storageAccountType}' is not supported.`, 'sku.name');
  }
  const uniqueId = randomUUID();
  const internal: DiskInternal = { backendId: `disk-${uniqueId}`, sizeGb: source.sizeGb, created: false };
  if (source.snapshot) internal.fromSnapshot = source.snapshot;
  const rec = newRecord<DiskInternal>(ref, {
    location,
    tags: tagsOf(ctx.body),
    sku: { name: storageAccountType, tier: storageAccountType.startsWith('Premium') ? 'Premium' : 'Standard' },
    tracked: true,
    internal,
    properties: {
      ...(source.os ? { osType: 'Linux', hyperVGeneration: source.os.hyperVGeneration } : {}),
      creationData: source.creationData,
      diskSizeGB: source.sizeGb,
      diskSizeBytes: source.sizeGb * 1024 ** 3,
      uniqueId,
      encryption: { type: 'EncryptionAtRestWithPlatformKey' },
      networkAccessPolicy: 'AllowAll',
      publicNetworkAccess: 'Enabled',
      timeCreated: new Date().toISOString(),
      provisioningState: 'Creating',
    },
  });
  core.state.put(rec);
  return startLro(core, ctx, rec, {
    step: 'disk.create',
    status: 201,
    body: kind.serialize(rec, ctx),
    work: async () => {
      await core.steps.wait('disk.create', { resourceId: rec.id });
      if (!core.state.isLive(rec)) throw gone(rec.id);
      await core.machines.createDisk(internal.backendId, internal.sizeGb, internal.fromSnapshot).catch((e: unknown) => Promise.reject(backendError(e)));
      internal.created = true;
      rec.properties.provisioningState = 'Succeeded';
    },
    onFailure: () => {
      rec.properties.provisioningState = 'Failed';
    },
  });
}

function diskSource(core: Core, p: Json, location: string): DiskSource {
  const creation = obj(p.creationData);
  const option = (str(creation.createOption) ?? '').toLowerCase();
  const requested = num(p.diskSizeGB);
  if (requested !== undefined && (requested < 1 || requested > MAX_DISK_GB)) {
    throw armErrors.invalidParameter(`The disk size ${requested} GB is not between 1 and ${MAX_DISK_GB} GB.`, 'diskSizeGB');
  }
  if (option === 'empty') {
    if (requested === undefined) throw armErrors.invalidParameter("Required parameter 'diskSizeGB' is missing (null).", 'diskSizeGB');
    return { sizeGb: requested, creationData: { createOption: 'Empty' } };
  }
  if (option !== 'fromimage') throw armErrors.notImplemented(`disks with createOption '${String(creation.createOption)}'`);

  const gallery = obj(creation.galleryImageReference);
  const user = obj(creation.imageReference);
  const reference = str(gallery.id) ? gallery : user;
  const id = str(reference.id);
  if (!id) {
    throw armErrors.invalidParameter("Required parameter 'creationData.imageReference' or 'creationData.galleryImageReference' is missing (null).", 'creationData');
  }
  const image = resolveImage(core, { id }, location);
  const lun = num(reference.lun);
  const disk = lun === undefined ? image.captured.os : image.captured.data.find((d) => d.lun === lun);
  if (!disk) throw armErrors.invalidParameter(`The image '${id}' has no data disk at lun ${lun}.`, 'creationData.imageReference.lun');
  if (requested !== undefined && requested < disk.sizeGb) {
    throw new ArmError(409, 'ResizeDiskError', `Disk size ${requested} GB is smaller than the size of the corresponding disk in the image: ${disk.sizeGb} GB.`);
  }
  const creationData: Json = { createOption: 'FromImage', [reference === gallery ? 'galleryImageReference' : 'imageReference']: { id, ...(lun === undefined ? {} : { lun }) } };
  return {
    sizeGb: requested ?? disk.sizeGb,
    snapshot: disk.snapshotId,
    ...(lun === undefined ? { os: { hyperVGeneration: image.hyperVGeneration } } : {}),
    creationData,
  };
}
