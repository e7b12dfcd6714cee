/**
 * Public base images the fake registers in every region: Amazon Linux 2023 (owner 137112412989,
 * alias amazon) and Ubuntu (owner 099720109477) for x86_64 and arm64 over several release dates,
 * plus near-miss names (AL2023 minimal, Ubuntu 22.04) so that filters and "newest" selection are
 * really exercised.
 */
import type { ImageRecord, RegionState } from './model.js';
import type { Ec2State } from './state.js';

export const AMAZON_OWNER = '137112412989';
export const CANONICAL_OWNER = '099720109477';

export interface SeedImageSpec {
  name: string;
  ownerId: string;
  ownerAlias?: string;
  architecture?: 'x86_64' | 'arm64';
  creationDate: Date | string;
  description?: string;
  rootDeviceName?: string;
  volumeSize?: number;
  volumeType?: string;
  /** Login user the machine backend injects the key for. Default ec2-user. */
  sshUser?: string;
  /** Launchable by everyone (default true). */
  public?: boolean;
  /** The root snapshot's id; generated when left out. A VM backend maps it to a base disk. */
  snapshotId?: string;
  state?: ImageRecord['state'];
  tags?: Record<string, string>;
}

const AL2023_RELEASES = ['2023.6.20250115.0', '2023.6.20250317.0', '2023.7.20250623.1', '2023.8.20250908.0'];
const NOBLE_SERIALS = ['20241210', '20250115', '20250610', '20250905'];

function releaseDate(yyyymmdd: string, hour: number): string {
  return `${yyyymmdd.slice(0, 4)}-${yyyymmdd.slice(4, 6)}-${yyyymmdd.slice(6, 8)}T${String(hour).padStart(2, '0')}:14:07.000Z`;
}

/** The catalogue of seeded base images (identical in every region except for ids). */
export function baseImageCatalog(): SeedImageSpec[] {
  const specs: SeedImageSpec[] = [];
  for (const release of AL2023_RELEASES) {
    const date = release.split('.')[2] as string;
    for (const arch of ['x86_64', 'arm64'] as const) {
      specs.push({
        name: `al2023-ami-2023.${release.slice(5)}-kernel-6.1-${arch}`,
        description: `Amazon Linux 2023 AMI ${release} ${arch} HVM kernel-6.1`,
        ownerId: AMAZON_OWNER,
        ownerAlias: 'amazon',
        architecture: arch,
        creationDate: releaseDate(date, arch === 'x86_64' ? 3 : 4),
        rootDeviceName: '/dev/xvda',
        volumeSize: 8,
        sshUser: 'ec2-user',
      });
    }
  }
  // Newer than every standard AL2023 image, but a different product: a loose pattern catches it.
  specs.push({
    name: 'al2023-ami-minimal-2023.8.20250915.0-kernel-6.1-x86_64',
    description: 'Amazon Linux 2023 AMI 2023.8.20250915.0 x86_64 Minimal HVM kernel-6.1',
    ownerId: AMAZON_OWNER,
    ownerAlias: 'amazon',
    architecture: 'x86_64',
    creationDate: releaseDate('20250915', 5),
    rootDeviceName: '/dev/xvda',
    volumeSize: 2,
    sshUser: 'ec2-user',
  });
  for (const serial of NOBLE_SERIALS) {
    for (const [arch, ubuntuArch] of [
      ['x86_64', 'amd64'],
      ['arm64', 'arm64'],
    ] as const) {
      specs.push({
        name: `ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-${ubuntuArch}-server-${serial}`,
        description: `Canonical, Ubuntu, 24.04, ${ubuntuArch} noble image`,
        ownerId: CANONICAL_OWNER,
        architecture: arch,
        creationDate: releaseDate(serial, 9),
        rootDeviceName: '/dev/sda1',
        volumeSize: 8,
        sshUser: 'ubuntu',
      });
    }
  }
  specs.push({
    name: 'ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20250920',
    description: 'Canonical, Ubuntu, 22.04 LTS, amd64 jammy image',
    ownerId: CANONICAL_OWNER,
    architecture: 'x86_64',
    creationDate: releaseDate('20250920', 9),
    rootDeviceName: '/dev/sda1',
    volumeSize: 8,
    volumeType: 'gp2',
    sshUser: 'ubuntu',
  });
  return specs;
}

export function seedImage(state: Ec2State, region: RegionState, spec: SeedImageSpec): ImageRecord {
  const snapshotId = spec.snapshotId ?? state.newId('snap');
  const volumeSize = spec.volumeSize ?? 8;
  const creationDate = new Date(spec.creationDate);
  region.snapshots.set(snapshotId, {
    id: snapshotId,
    volumeId: 'vol-ffffffff',
    state: 'completed',
    startTime: creationDate,
    ownerId: spec.ownerId,
    description: `Base snapshot of ${spec.name}`,
    volumeSize,
    encrypted: false,
    tags: new Map(),
  });
  const image: ImageRecord = {
    id: state.newId('ami'),
    name: spec.name,
    description: spec.description,
    ownerId: spec.ownerId,
    ownerAlias: spec.ownerAlias,
    state: spec.state ?? 'available',
    architecture: spec.architecture ?? 'x86_64',
    creationDate,
    rootDeviceName: spec.rootDeviceName ?? '/dev/xvda',
    mappings: [
      {
        deviceName: spec.rootDeviceName ?? '/dev/xvda',
        snapshotId,
        volumeSize,
        volumeType: spec.volumeType ?? 'gp3',
        deleteOnTermination: true,
        encrypted: false,
        ...((spec.volumeType ?? 'gp3') === 'gp3' ? { iops: 3000, throughput: 125 } : {}),
      },
    ],
    launchGroupAll: spec.public ?? true,
    launchUserIds: new Set(),
    tags: new Map(Object.entries(spec.tags ?? {})),
    sshUser: spec.sshUser ?? 'ec2-user',
    bootMode: 'uefi-preferred',
  };
  region.images.set(image.id, image);
  return image;
}

export function seedBaseImages(state: Ec2State, region: RegionState): void {
  for (const spec of baseImageCatalog()) seedImage(state, region, spec);
}
