/**
 * Microsoft.Compute/disks and Microsoft.Compute/images.
 *
 * Disks are the OS and data disks a VM creates (untagged: Azure does not copy a VM's tags to its
 * implicit disks) or disks made on their own (disk-create.ts). `managedBy` names the VM a disk is
 * attached to, and `diskState` is Attached, Reserved (VM deallocated) or Unattached. Deleting an
 * attached disk is 409 OperationNotAllowed.
 *
 * Images are created from `sourceVirtualMachine`, or from a `storageProfile` of managed disks (an
 * OS disk with osType and osState, data disks by lun; snapshots and blobs answer 501). A source VM
 * must be generalized (409 OperationNotAllowed otherwise); VM and disks must be in the image's
 * region. After the `image.create` step every source disk is snapshotted through the backend
 * (`snapshotDisk`), OS first, then data disks by lun. Deleting an image deletes its snapshots.
 */
import { randomUUID } from 'node:crypto';
import { armErrors } from '../errors.js';
import {
  arr,
  backendError,
  newRecord,
  num,
  obj,
  props,
  refId,
  requireLocation,
  sameId,
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
import { putDisk } from './disk-create.js';
import {
  C,
  COMPUTE_API_VERSIONS,
  DISK_API_VERSIONS,
  type CapturedImage,
  type DiskInternal,
  type ImageInternal,
  type VmInternal,
} from './compute-common.js';

export function diskKinds(core: Core): ResourceKind[] {
  const disk: ResourceKind = {
    type: C.disk,
    operationGroup: 'disks',
    apiVersions: DISK_API_VERSIONS,
    tracked: true,
    purgeOrder: 30,
    serialize: (rec) => {
      const json = trackedJson(rec);
      const vm = core.state.get<VmInternal>(rec.managedBy);
      (json.properties as Json).diskState = !vm ? 'Unattached' : vm.internal.power === 'deallocated' ? 'Reserved' : 'Attached';
      return json;
    },
    put: (ctx, ref) => putDisk(core, disk, ctx, ref),
    delete: (ctx, rec) => {
      if (rec.managedBy && core.state.get(rec.managedBy)) {
        throw armErrors.operationNotAllowed(`Disk ${rec.name} is attached to VM ${rec.managedBy}.`);
      }
      const d = rec as ResourceRecord<DiskInternal>;
      d.properties.provisioningState = 'Deleting';
      return startLro(core, ctx, rec, {
        step: 'disk.delete',
        status: 202,
        location: true,
        work: async () => {
          await core.steps.wait('disk.delete', { resourceId: rec.id });
          if (d.internal.created) await core.machines.deleteDisk(d.internal.backendId).catch((e: unknown) => Promise.reject(backendError(e)));
          d.internal.created = false;
          if (core.state.isLive(rec)) core.state.remove(rec.id);
        },
        onFailure: () => {
          d.properties.provisioningState = 'Failed';
        },
      });
    },
    purge: async (rec) => {
      const d = rec as ResourceRecord<DiskInternal>;
      if (d.internal.created) await core.machines.deleteDisk(d.internal.backendId);
      d.internal.created = false;
    },
  };

  const image: ResourceKind = {
    type: C.image,
    operationGroup: 'images',
    apiVersions: COMPUTE_API_VERSIONS,
    tracked: true,
    purgeOrder: 30,
    serialize: trackedJson,
    put: (ctx, ref) => {
      core.state.requireGroup(ref.resourceGroup, true);
      const location = requireLocation(ctx.body);
      const p = props(ctx.body);
      const sourceId = refId(p.sourceVirtualMachine);
      const existing = core.state.get<ImageInternal>(ref.id);
      if (existing) {
        const before = refId(existing.properties.sourceVirtualMachine);
        if ((sourceId ?? before) !== undefined && !sameId(sourceId, before)) {
          throw armErrors.conflict("Changing property 'sourceVirtualMachine' is not allowed.", 'PropertyChangeNotAllowed');
        }
        existing.tags = tagsOf(ctx.body);
        return { status: 200, body: trackedJson(existing) };
      }
      if (!sourceId) {
        if (!p.storageProfile) throw armErrors.invalidParameter('Either sourceVirtualMachine or storageProfile is required.', 'sourceVirtualMachine');
        return imageFromDisks(core, ctx, ref, location);
      }
      const vm = core.state.get<VmInternal>(sourceId);
      if (!vm || vm.type !== C.vm) throw armErrors.invalidParameter(`Source virtual machine '${sourceId}' was not found.`, 'sourceVirtualMachine');
      if (vm.location !== location) throw armErrors.invalidParameter('The source virtual machine must be in the same region as the image.', 'sourceVirtualMachine');
      if (!vm.internal.generalized) {
        throw armErrors.operationNotAllowed(`Operation 'createImage' is not allowed on VM '${vm.name}' since the VM is not generalized.`);
      }
      const hyperVGeneration = generationOf(p);
      const disks = vmDisks(core, vm);
      const [os, ...data] = disks;
      const entry = (d: ResourceRecord<DiskInternal>): Json => ({
        diskSizeGB: d.internal.sizeGb,
        managedDisk: { id: d.id },
        storageAccountType: String(d.sku?.name ?? 'Standard_LRS'),
      });
      const rec = newRecord<ImageInternal>(ref, {
        location,
        tags: tagsOf(ctx.body),
        tracked: true,
        internal: { snapshots: [] },
        properties: {
          sourceVirtualMachine: { id: vm.id },
          storageProfile: {
            osDisk: { osType: 'Linux', osState: 'Generalized', caching: 'ReadWrite', ...(os ? entry(os) : {}) },
            dataDisks: data.map((d) => ({ lun: lunOf(vm, d.id), caching: 'None', ...entry(d) })),
            zoneResilient: false,
          },
          hyperVGeneration,
          provisioningState: 'Creating',
        },
      });
      return startImageCreate(core, ctx, rec, (taken) => capture(core, vm, taken));
    },
    delete: (ctx, rec) => {
      const img = rec as ResourceRecord<ImageInternal>;
      img.properties.provisioningState = 'Deleting';
      return startLro(core, ctx, rec, {
        step: 'image.delete',
        status: 202,
        location: true,
        work: async () => {
          await core.steps.wait('image.delete', { resourceId: rec.id });
          await releaseSnapshots(core, img.internal);
          if (core.state.isLive(rec)) core.state.remove(rec.id);
        },
      });
    },
    purge: (rec) => releaseSnapshots(core, (rec as ResourceRecord<ImageInternal>).internal),
  };

  return [disk, image];
}

function generationOf(p: Json): 'V1' | 'V2' {
  const hyperVGeneration = str(p.hyperVGeneration) ?? 'V1';
  if (hyperVGeneration !== 'V1' && hyperVGeneration !== 'V2') throw armErrors.invalidParameter(`hyperVGeneration '${hyperVGeneration}' is not valid.`, 'hyperVGeneration');
  return hyperVGeneration;
}

/** An image from managed disks (`storageProfile.osDisk.managedDisk`, `dataDisks[].managedDisk`). */
function imageFromDisks(core: Core, ctx: RequestContext, ref: ResourceRef, location: string) {
  const p = props(ctx.body);
  const sp = obj(p.storageProfile);
  const os = obj(sp.osDisk);
  const osState = str(os.osState);
  if (str(os.osType)?.toLowerCase() !== 'linux' && str(os.osType)?.toLowerCase() !== 'windows') {
    throw armErrors.invalidParameter("Required parameter 'osDisk.osType' is missing or not Linux or Windows.", 'storageProfile.osDisk.osType');
  }
  if (osState !== 'Generalized' && osState !== 'Specialized') {
    throw armErrors.invalidParameter("Required parameter 'osDisk.osState' is missing or not Generalized or Specialized.", 'storageProfile.osDisk.osState');
  }
  const sourceDisk = (spec: Json, target: string): ResourceRecord<DiskInternal> => {
    if (refId(spec.snapshot) || str(spec.blobUri)) throw armErrors.notImplemented('images from snapshots or blobs');
    const id = refId(spec.managedDisk);
    const disk = core.state.get<DiskInternal>(id);
    if (!id || !disk || disk.type !== C.disk || !disk.internal.created) throw armErrors.invalidParameter(`Source managed disk '${id ?? ''}' was not found.`, target);
    if (disk.location !== location) throw armErrors.invalidParameter(`Source managed disk '${id}' must be in the same region as the image.`, target);
    return disk;
  };
  const sources: { disk: ResourceRecord<DiskInternal>; lun?: number }[] = [{ disk: sourceDisk(os, 'storageProfile.osDisk.managedDisk') }];
  for (const d of arr(sp.dataDisks)) {
    const lun = num(d.lun);
    if (lun === undefined || !Number.isInteger(lun) || lun < 0 || lun > 63) throw armErrors.invalidParameter(`Data disk lun '${String(d.lun)}' is not valid.`, 'storageProfile.dataDisks.lun');
    sources.push({ disk: sourceDisk(d, 'storageProfile.dataDisks.managedDisk'), lun });
  }
  const entry = (d: ResourceRecord<DiskInternal>): Json => ({ diskSizeGB: d.internal.sizeGb, managedDisk: { id: d.id }, storageAccountType: String(d.sku?.name ?? 'Standard_LRS') });
  const rec = newRecord<ImageInternal>(ref, {
    location,
    tags: tagsOf(ctx.body),
    tracked: true,
    internal: { snapshots: [] },
    properties: {
      storageProfile: {
        osDisk: { osType: str(os.osType), osState, caching: 'ReadWrite', ...entry(sources[0]?.disk as ResourceRecord<DiskInternal>) },
        dataDisks: sources.slice(1).map((x) => ({ lun: x.lun, caching: 'None', ...entry(x.disk) })),
        zoneResilient: false,
      },
      hyperVGeneration: generationOf(p),
      provisioningState: 'Creating',
    },
  });
  return startImageCreate(core, ctx, rec, (taken) => snapshotAll(core, sources, taken));
}

/** Stores a new image and starts its creation: after the `image.create` step, `snapshot` takes its disks. */
function startImageCreate(core: Core, ctx: RequestContext, rec: ResourceRecord<ImageInternal>, snapshot: (taken: string[]) => Promise<CapturedImage>) {
  core.state.put(rec);
  return startLro(core, ctx, rec, {
    step: 'image.create',
    status: 201,
    body: trackedJson(rec),
    work: async () => {
      await core.steps.wait('image.create', { resourceId: rec.id });
      rec.internal.captured = await snapshot(rec.internal.snapshots);
      rec.properties.provisioningState = 'Succeeded';
    },
    onFailure: () => {
      rec.properties.provisioningState = 'Failed';
    },
  });
}

/** The VM's disk records: OS first, then data disks by lun. */
export function vmDisks(core: Core, vm: ResourceRecord<VmInternal>): ResourceRecord<DiskInternal>[] {
  return [...vm.internal.disks]
    .sort((a, b) => (a.lun ?? -1) - (b.lun ?? -1))
    .map((d) => core.state.get<DiskInternal>(d.id))
    .filter((d): d is ResourceRecord<DiskInternal> => d !== undefined);
}

function lunOf(vm: ResourceRecord<VmInternal>, diskId: string): number {
  return vm.internal.disks.find((d) => sameId(d.id, diskId))?.lun ?? 0;
}

/**
 * Snapshots every disk of a stopped, generalized VM through the backend. Snapshot ids are pushed
 * to `taken` as they are made, so a capture that fails half-way can still be cleaned up.
 */
export async function capture(core: Core, vm: ResourceRecord<VmInternal>, taken: string[]): Promise<CapturedImage> {
  if (!core.state.isLive(vm)) throw armErrors.invalidParameter(`Source virtual machine '${vm.id}' was deleted.`, 'sourceVirtualMachine');
  const disks = vmDisks(core, vm).map((disk) => {
    const lun = vm.internal.disks.find((d) => sameId(d.id, disk.id))?.lun;
    return lun === undefined ? { disk } : { disk, lun };
  });
  return snapshotAll(core, disks, taken);
}

/** Snapshots each disk (the one without a lun is the OS disk); ids go to `taken` as they are made. */
async function snapshotAll(core: Core, disks: { disk: ResourceRecord<DiskInternal>; lun?: number }[], taken: string[]): Promise<CapturedImage> {
  const out: CapturedImage = { os: { snapshotId: '', sizeGb: 0 }, data: [] };
  for (const { disk, lun } of disks) {
    if (!core.state.isLive(disk)) throw armErrors.invalidParameter(`Source managed disk '${disk.id}' was deleted.`, 'storageProfile');
    const snapshotId = `snap-${randomUUID()}`;
    await core.machines.snapshotDisk(disk.internal.backendId, snapshotId).catch((e: unknown) => Promise.reject(backendError(e)));
    taken.push(snapshotId);
    const entry = { snapshotId, sizeGb: disk.internal.sizeGb };
    if (lun === undefined) out.os = entry;
    else out.data.push({ lun, ...entry });
  }
  return out;
}

export async function releaseSnapshots(core: Core, internal: ImageInternal): Promise<void> {
  while (internal.snapshots.length) {
    const id = internal.snapshots[0] as string;
    await core.machines.deleteSnapshot(id);
    internal.snapshots.shift();
  }
  delete internal.captured;
}
