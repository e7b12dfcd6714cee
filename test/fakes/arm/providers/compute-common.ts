/**
 * Microsoft.Compute pieces shared by VMs, disks, images and galleries: api-versions per resource
 * family (the compute SDK 24 sends 2026-03-01 for VMs and images, 2025-01-02 for disks and
 * snapshots, 2025-03-03 for galleries), the fake-only records kept on each resource, the per-VM
 * operation queue, and resolving a VM's `imageReference` to disk snapshots.
 */
import type { DiskDevice } from '../../common/machines.js';
import { ArmError, armErrors } from '../errors.js';
import { obj, str, type Core, type Json, type VmSize } from '../kinds.js';
import type { ResourceRecord } from '../state.js';

export const COMPUTE_API_VERSIONS = ['2026-03-01', '2025-04-01', '2024-11-01', '2024-07-01', '2024-03-01', '2023-09-01', '2023-07-01', '2023-03-01'] as const;
export const DISK_API_VERSIONS = ['2025-01-02', '2024-03-02', '2023-10-02', '2023-04-02', '2023-01-02', '2022-07-02'] as const;
export const GALLERY_API_VERSIONS = ['2025-03-03', '2024-03-03', '2023-07-03', '2022-08-03', '2022-03-03', '2021-10-01'] as const;

export const C = {
  vm: 'Microsoft.Compute/virtualMachines',
  disk: 'Microsoft.Compute/disks',
  image: 'Microsoft.Compute/images',
  gallery: 'Microsoft.Compute/galleries',
  galleryImage: 'Microsoft.Compute/galleries/images',
  galleryVersion: 'Microsoft.Compute/galleries/images/versions',
} as const;

export const DEFAULT_VM_SIZES: Record<string, VmSize> = {
  Standard_B1s: { cpus: 1, memoryMiB: 1024 },
  Standard_B1ms: { cpus: 1, memoryMiB: 2048 },
  Standard_B2s: { cpus: 2, memoryMiB: 4096 },
  Standard_B2ms: { cpus: 2, memoryMiB: 8192 },
  Standard_B4ms: { cpus: 4, memoryMiB: 16384 },
  Standard_D2s_v3: { cpus: 2, memoryMiB: 8192 },
  Standard_D4s_v3: { cpus: 4, memoryMiB: 16384 },
  Standard_D2s_v5: { cpus: 2, memoryMiB: 8192 },
  Standard_D4s_v5: { cpus: 4, memoryMiB: 16384 },
  Standard_D8s_v5: { cpus: 8, memoryMiB: 32768 },
  Standard_D2ds_v5: { cpus: 2, memoryMiB: 8192 },
  Standard_D4ds_v5: { cpus: 4, memoryMiB: 16384 },
  Standard_D2as_v5: { cpus: 2, memoryMiB: 8192 },
  Standard_D4as_v5: { cpus: 4, memoryMiB: 16384 },
  Standard_E2s_v5: { cpus: 2, memoryMiB: 16384 },
  Standard_E4s_v5: { cpus: 4, memoryMiB: 32768 },
  Standard_F2s_v2: { cpus: 2, memoryMiB: 4096 },
  Standard_F4s_v2: { cpus: 4, memoryMiB: 8192 },
};

export const STORAGE_ACCOUNT_TYPES = ['Standard_LRS', 'Premium_LRS', 'StandardSSD_LRS', 'UltraSSD_LRS', 'Premium_ZRS', 'StandardSSD_ZRS', 'PremiumV2_LRS'];

export type PowerState = 'starting' | 'running' | 'stopping' | 'stopped' | 'deallocating' | 'deallocated';

export interface VmDisk {
  /** ARM id of the disk resource. */
  id: string;
  lun?: number;
  deleteOption: 'Delete' | 'Detach';
}

export interface VmInternal {
  vmId: string;
  /** Id given to the machine backend. */
  machineId: string;
  power: PowerState;
  generalized: boolean;
  /** Whether the backend machine exists (started at least once, not destroyed). */
  machineExists: boolean;
  address: string;
  sshUser: string;
  sshKey: string;
  size: VmSize;
  disks: VmDisk[];
  nics: { id: string; deleteOption: 'Delete' | 'Detach' }[];
  /** Operations on one VM run one after the other, like ARM serialises them. */
  chain: Promise<void>;
}

export interface DiskInternal {
  /** Id given to the machine backend. */
  backendId: string;
  sizeGb: number;
  fromSnapshot?: string;
  /** Whether the backend disk exists yet. */
  created: boolean;
}

/** Disk content captured by an image or a gallery image version. */
export interface CapturedImage {
  os: { snapshotId: string; sizeGb: number };
  data: { lun: number; snapshotId: string; sizeGb: number }[];
}

export interface ImageInternal {
  captured?: CapturedImage;
  /** Snapshots taken so far (also those of a capture that failed half-way), for clean-up. */
  snapshots: string[];
}

export type RegionState = { state: 'Replicating' | 'Completed' | 'Failed'; progress: number; details?: string };

export interface VersionInternal extends ImageInternal {
  regions: Record<string, RegionState>;
}

/** How the machine backend presents a VM's disks: data disks at their LUN. */
export function lunDevices(disks: { backendId: string; lun?: number }[]): Record<string, DiskDevice> {
  return Object.fromEntries(disks.flatMap((d) => (d.lun === undefined ? [] : [[d.backendId, { kind: 'azure', lun: d.lun } as const]])));
}

/** Runs `fn` after every operation queued earlier on this VM, whatever their outcome. */
export function enqueue<T>(vm: ResourceRecord<VmInternal>, fn: () => Promise<T>): Promise<T> {
  const run = vm.internal.chain.then(fn);
  vm.internal.chain = run.then(
    () => undefined,
    () => undefined,
  );
  return run;
}

export interface ResolvedImage {
  /** `storageProfile.imageReference` as served back. */
  served: Json;
  captured: CapturedImage;
  hyperVGeneration: 'V1' | 'V2';
}

/** Marketplace images have no snapshot; the backend gets this id and maps it to a base image. */
export const marketplaceSnapshotId = (publisher: string, offer: string, sku: string, version: string): string =>
  `marketplace:${publisher}:${offer}:${sku}:${version}`;

/** Resolves a VM's `imageReference` (marketplace, managed image, gallery image or version). */
export function resolveImage(core: Core, reference: Json, location: string, knownImages?: string[]): ResolvedImage {
  const id = str(reference.id);
  if (!id) {
    const [publisher, offer, sku, version] = ['publisher', 'offer', 'sku', 'version'].map((k) => str(reference[k]));
    if (!publisher || !offer || !sku || !version) {
      throw armErrors.invalidParameter('The imageReference must give either an id or publisher, offer, sku and version.', 'imageReference');
    }
    if (knownImages && !knownImages.some((k) => k.toLowerCase() === `${publisher}:${offer}:${sku}`.toLowerCase())) {
      throw new ArmError(
        404,
        'PlatformImageNotFound',
        `The platform image '${publisher}:${offer}:${sku}:${version}' is not available. Verify that all fields in the storage profile are correct.`,
      );
    }
    const exactVersion = version.toLowerCase() === 'latest' ? '1.0.0' : version;
    return {
      served: { publisher, offer, sku, version, exactVersion },
      captured: { os: { snapshotId: marketplaceSnapshotId(publisher, offer, sku, exactVersion), sizeGb: 30 }, data: [] },
      hyperVGeneration: /gen2|-g2$/i.test(sku) ? 'V2' : 'V1',
    };
  }
  const notFound = (): never => {
    throw new ArmError(404, 'ImageNotFound', `The Image '${id}' cannot be found in '${location}' region.`);
  };
  const rec = core.state.get(id) ?? notFound();
  if (rec.type === C.image) {
    const image = rec as ResourceRecord<ImageInternal>;
    if (image.location !== location || !image.internal.captured || image.properties.provisioningState !== 'Succeeded') notFound();
    return {
      served: { id: image.id },
      captured: image.internal.captured as CapturedImage,
      hyperVGeneration: image.properties.hyperVGeneration === 'V2' ? 'V2' : 'V1',
    };
  }
  let version: ResourceRecord<VersionInternal> | undefined;
  if (rec.type === C.galleryVersion) version = rec as ResourceRecord<VersionInternal>;
  else if (rec.type === C.galleryImage) version = latestVersion(core, rec, location);
  else throw armErrors.invalidParameter(`'${id}' is not an image.`, 'imageReference.id');
  if (!version?.internal.captured || version.internal.regions[location]?.state !== 'Completed') notFound();
  const definition = core.state.get(version?.id.split('/versions/')[0]);
  return {
    served: { id, exactVersion: version?.name },
    captured: version?.internal.captured as CapturedImage,
    hyperVGeneration: obj(definition?.properties).hyperVGeneration === 'V2' ? 'V2' : 'V1',
  };
}

/** Highest version of a gallery image usable in `location` and not excluded from latest. */
function latestVersion(core: Core, definition: ResourceRecord, location: string): ResourceRecord<VersionInternal> | undefined {
  const key = (name: string): number[] => name.split('.').map(Number);
  return core.state
    .children<VersionInternal>(definition.id, C.galleryVersion)
    .filter((v) => v.internal.regions[location]?.state === 'Completed' && !obj(v.properties.publishingProfile).excludeFromLatest)
    .sort((a, b) => {
      const [x, y] = [key(a.name), key(b.name)];
      for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (y[i] ?? 0) - (x[i] ?? 0);
      return 0;
    })[0];
}
