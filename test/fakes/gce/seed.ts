/**
 * Public images the fake starts with: dated images of `ubuntu-os-cloud` family
 * `ubuntu-2404-lts-amd64` (the oldest DEPRECATED, like the real project keeps them) and
 * `debian-cloud` family `debian-12`. A VM-backed run supplies its own list whose `snapshotId`s
 * name base disks its MachineBackend can clone.
 */
import type { GceState, ImageRecord } from './state.js';
import { timestamp } from './fields.js';

export interface SeedImage {
  project: string;
  name: string;
  family: string;
  /** ISO date of creation; the newest non-deprecated image is what getFromFamily returns. */
  created: string;
  diskSizeGb: number;
  deprecated?: 'DEPRECATED' | 'OBSOLETE';
  /** Snapshot id for MachineBackend.createDisk; defaults to `public-<project>-<name>`. */
  snapshotId?: string;
  architecture?: string;
}

export const DEFAULT_PUBLIC_IMAGES: SeedImage[] = [
  { project: 'ubuntu-os-cloud', name: 'ubuntu-2404-noble-amd64-v20250115', family: 'ubuntu-2404-lts-amd64', created: '2025-01-15T10:00:00Z', diskSizeGb: 10, deprecated: 'DEPRECATED' },
  { project: 'ubuntu-os-cloud', name: 'ubuntu-2404-noble-amd64-v20250214', family: 'ubuntu-2404-lts-amd64', created: '2025-02-14T10:00:00Z', diskSizeGb: 10 },
  { project: 'ubuntu-os-cloud', name: 'ubuntu-2404-noble-amd64-v20250313', family: 'ubuntu-2404-lts-amd64', created: '2025-03-13T10:00:00Z', diskSizeGb: 10 },
  { project: 'ubuntu-os-cloud', name: 'ubuntu-2204-jammy-v20250310', family: 'ubuntu-2204-lts', created: '2025-03-10T10:00:00Z', diskSizeGb: 10 },
  { project: 'debian-cloud', name: 'debian-12-bookworm-v20250113', family: 'debian-12', created: '2025-01-13T10:00:00Z', diskSizeGb: 10 },
  { project: 'debian-cloud', name: 'debian-12-bookworm-v20250311', family: 'debian-12', created: '2025-03-11T10:00:00Z', diskSizeGb: 10 },
];

export function seedImages(state: GceState, seeds: SeedImage[]): void {
  const byFamily = new Map<string, SeedImage[]>();
  for (const s of seeds) byFamily.set(`${s.project}/${s.family}`, [...(byFamily.get(`${s.project}/${s.family}`) ?? []), s]);
  for (const seed of seeds) {
    const created = timestamp(new Date(seed.created));
    const newer = (byFamily.get(`${seed.project}/${seed.family}`) ?? [])
      .filter((s) => !s.deprecated && Date.parse(s.created) > Date.parse(seed.created))
      .sort((a, b) => Date.parse(a.created) - Date.parse(b.created))[0];
    const record: ImageRecord = {
      project: seed.project,
      name: seed.name,
      id: state.ids.id(),
      creationTimestamp: created,
      status: 'READY',
      family: seed.family,
      description: `Canonical/Debian public image ${seed.name}`,
      labels: {},
      diskSizeGb: seed.diskSizeGb,
      archiveSizeBytes: seed.diskSizeGb * 120_000_000,
      storageLocations: ['eu', 'asia', 'us'],
      architecture: seed.architecture ?? 'X86_64',
      guestOsFeatures: ['VIRTIO_SCSI_MULTIQUEUE', 'SEV_CAPABLE', 'UEFI_COMPATIBLE', 'GVNIC'],
      licenses: [`https://www.googleapis.com/compute/v1/projects/${seed.project}/global/licenses/${seed.family}`],
      iam: state.newIamPolicy(),
      snapshotId: seed.snapshotId ?? `public-${seed.project}-${seed.name}`,
      seeded: true,
    };
    if (seed.deprecated) {
      record.deprecated = {
        state: seed.deprecated,
        ...(newer ? { replacement: state.imageLink({ project: newer.project, name: newer.name }) } : {}),
      };
    }
    state.putImage(record);
  }
}
