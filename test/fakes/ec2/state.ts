/**
 * The EC2 fake's model: one RegionState per region (created on first use, with a default VPC, a
 * default subnet in each of the zones `<region>a`, `b` and `c`, the `default` security group, and
 * optionally the seeded public base images), id generation, lookups that raise EC2's
 * NotFound/Malformed errors, and the inspection API tests use to assert what is left.
 */
import { createHash } from 'node:crypto';
import { LoopbackAddresses, NullMachines, type MachineBackend } from '../common/machines.js';
import { Transitions } from '../common/transitions.js';
import { Ec2Error, notFound } from './errors.js';
import type {
  ImageRecord,
  InstanceRecord,
  KeyPairRecord,
  RegionState,
  ResourceType,
  SecurityGroupRecord,
  SnapshotRecord,
  Tags,
  VolumeRecord,
} from './model.js';
import { seedBaseImages, seedImage, type SeedImageSpec } from './seed.js';

export interface Ec2StateOptions {
  /** The caller's account id (the fake serves one account). Default 123456789012. */
  accountId?: string;
  machines?: MachineBackend;
  transitions?: Transitions;
  /** Register the public Amazon Linux 2023 and Ubuntu base images in every region. Default true. */
  seedBaseImages?: boolean;
  /**
   * For this many ms after RunInstances, the new instances are invisible to calls naming them
   * (InvalidInstanceID.NotFound) and to DescribeInstances, as EC2's eventual consistency allows.
   */
  instanceNotFoundWindowMs?: number;
  /** Seed for id generation; the same seed gives the same ids. */
  seed?: number;
  /** Allocator of public addresses; pass one shared with other fakes to keep addresses distinct. */
  loopback?: LoopbackAddresses;
}

/** What a region still holds that a run created (defaults and seeded public images excluded). */
export interface LiveResources {
  instances: string[];
  volumes: string[];
  snapshots: string[];
  images: string[];
  keyPairs: string[];
  securityGroups: string[];
}

export interface TaggedResource {
  type: ResourceType;
  id: string;
  tags: Tags;
}

export class Ec2State {
  readonly accountId: string;
  readonly machines: MachineBackend;
  readonly transitions: Transitions;
  readonly loopback: LoopbackAddresses;
  readonly instanceNotFoundWindowMs: number;
  /** Errors thrown by the machine backend during asynchronous transitions. */
  readonly backendErrors: Array<{ context: string; error: unknown }> = [];
  closed = false;
  private readonly regions = new Map<string, RegionState>();
  private readonly seedBase: boolean;
  private readonly idSeed: number;
  private counter = 0;
  private ipCounter = 10;

  constructor(options: Ec2StateOptions = {}) {
    this.accountId = options.accountId ?? '123456789012';
    this.machines = options.machines ?? new NullMachines();
    this.transitions = options.transitions ?? new Transitions();
    this.seedBase = options.seedBaseImages ?? true;
    this.instanceNotFoundWindowMs = options.instanceNotFoundWindowMs ?? 0;
    this.idSeed = options.seed ?? 1;
    this.loopback = options.loopback ?? new LoopbackAddresses();
  }

  /** A region's state, created with its defaults on first use. */
  region(name: string): RegionState {
    let region = this.regions.get(name);
    if (region) return region;
    region = {
      name,
      images: new Map(),
      snapshots: new Map(),
      volumes: new Map(),
      keyPairs: new Map(),
      vpcs: new Map(),
      subnets: new Map(),
      securityGroups: new Map(),
      instances: new Map(),
      reservations: new Map(),
      clientTokens: new Map(),
    };
    this.regions.set(name, region);
    const vpcId = this.newId('vpc');
    region.vpcs.set(vpcId, { id: vpcId, cidrBlock: '172.31.0.0/16', isDefault: true, tags: new Map() });
    const subnetId = this.newId('subnet');
    region.subnets.set(subnetId, {
      id: subnetId,
      vpcId,
      cidrBlock: '172.31.0.0/20',
      availabilityZone: `${name}a`,
      defaultForAz: true,
      tags: new Map(),
    });
    const sgId = this.newId('sg');
    region.securityGroups.set(sgId, {
      id: sgId,
      name: 'default',
      description: 'default VPC security group',
      vpcId,
      ingress: [{ ruleId: this.newId('sgr'), ipProtocol: '-1', sourceGroupId: sgId }],
      egress: [{ ruleId: this.newId('sgr'), ipProtocol: '-1', cidrIp: '0.0.0.0/0' }],
      tags: new Map(),
    });
    if (this.seedBase) seedBaseImages(this, region);
    // Created last so that the ids above stay what they were before the fake had more zones.
    for (const zone of ['b', 'c']) {
      const id = this.newId('subnet');
      const n = zone === 'b' ? 16 : 32;
      region.subnets.set(id, { id, vpcId, cidrBlock: `172.31.${n}.0/20`, availabilityZone: `${name}${zone}`, defaultForAz: true, tags: new Map() });
    }
    return region;
  }

  regionNames(): string[] {
    return [...this.regions.keys()];
  }

  /** `ami-0123456789abcdef0`-style ids (17 hex digits), deterministic for a seed. */
  newId(prefix: string): string {
    const hash = createHash('sha256').update(`${this.idSeed}/${prefix}/${this.counter++}`).digest('hex');
    return `${prefix}-0${hash.slice(0, 16)}`;
  }

  nextPrivateIp(): string {
    const n = this.ipCounter++;
    return `172.31.${(n >> 8) & 15}.${n & 255}`;
  }

  /** Registers a public (or private) image with one root snapshot; returns its id. */
  seedImage(regionName: string, spec: SeedImageSpec): string {
    return seedImage(this, this.region(regionName), spec).id;
  }

  // ---- lookups ---------------------------------------------------------------------------

  instanceVisible(instance: InstanceRecord): boolean {
    return performance.now() - instance.launchedAt >= this.instanceNotFoundWindowMs;
  }

  getInstances(region: RegionState, ids: string[]): InstanceRecord[] {
    for (const id of ids) {
      if (!/^i-[0-9a-f]{8}([0-9a-f]{9})?$/.test(id)) {
        throw new Ec2Error('InvalidInstanceID.Malformed', `Invalid id: "${id}"`);
      }
    }
    const missing = ids.filter((id) => {
      const instance = region.instances.get(id);
      return !instance || !this.instanceVisible(instance);
    });
    if (missing.length) throw notFound('InvalidInstanceID.NotFound', 'instance ID', missing);
    return ids.map((id) => region.instances.get(id) as InstanceRecord);
  }

  getInstance(region: RegionState, id: string): InstanceRecord {
    return this.getInstances(region, [id])[0] as InstanceRecord;
  }

  /** Whether the caller may launch (and see) an image. */
  canUseImage(image: ImageRecord): boolean {
    return image.ownerId === this.accountId || image.launchGroupAll || image.launchUserIds.has(this.accountId);
  }

  getImage(region: RegionState, id: string): ImageRecord {
    if (!/^ami-[0-9a-f]{8}([0-9a-f]{9})?$/.test(id)) {
      throw new Ec2Error('InvalidAMIID.Malformed', `Invalid id: "${id}" (expecting "ami-...")`);
    }
    const image = region.images.get(id);
    if (!image || !this.canUseImage(image)) {
      throw new Ec2Error('InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`);
    }
    return image;
  }

  /** An image the caller owns (for Modify/Deregister/DescribeImageAttribute). */
  getOwnImage(region: RegionState, id: string): ImageRecord {
    const image = this.getImage(region, id);
    if (image.ownerId !== this.accountId) {
      throw new Ec2Error('AuthFailure', `Not authorized for image:${id}`);
    }
    return image;
  }

  getSnapshot(region: RegionState, id: string): SnapshotRecord {
    const snapshot = region.snapshots.get(id);
    if (!snapshot) throw notFound('InvalidSnapshot.NotFound', 'snapshot', [id]);
    return snapshot;
  }

  getVolume(region: RegionState, id: string): VolumeRecord {
    const volume = region.volumes.get(id);
    if (!volume) throw notFound('InvalidVolume.NotFound', 'volume', [id]);
    return volume;
  }

  getSecurityGroup(region: RegionState, id: string): SecurityGroupRecord {
    if (!/^sg-[0-9a-f]{8,17}$/.test(id)) throw new Ec2Error('InvalidGroupId.Malformed', `Invalid id: "${id}"`);
    const group = region.securityGroups.get(id);
    if (!group) throw new Ec2Error('InvalidGroup.NotFound', `The security group '${id}' does not exist`);
    return group;
  }

  getKeyPair(region: RegionState, name: string): KeyPairRecord {
    const key = [...region.keyPairs.values()].find((k) => k.name === name);
    if (!key) throw new Ec2Error('InvalidKeyPair.NotFound', `The key pair '${name}' does not exist`);
    return key;
  }

  /** Any taggable resource by id (CreateTags, DeleteTags). */
  taggable(region: RegionState, id: string): TaggedResource {
    const prefix = id.slice(0, id.indexOf('-'));
    const lookups: Record<string, () => TaggedResource> = {
      i: () => ({ type: 'instance', id, tags: this.getInstance(region, id).tags }),
      vol: () => ({ type: 'volume', id, tags: this.getVolume(region, id).tags }),
      snap: () => ({ type: 'snapshot', id, tags: this.getSnapshot(region, id).tags }),
      ami: () => ({ type: 'image', id, tags: this.getImage(region, id).tags }),
      sg: () => ({ type: 'security-group', id, tags: this.getSecurityGroup(region, id).tags }),
      key: () => {
        const key = region.keyPairs.get(id);
        if (!key) throw new Ec2Error('InvalidKeyPair.NotFound', `The key pair '${id}' does not exist`);
        return { type: 'key-pair', id, tags: key.tags };
      },
      vpc: () => {
        const vpc = region.vpcs.get(id);
        if (!vpc) throw notFound('InvalidVpcID.NotFound', 'vpc ID', [id]);
        return { type: 'vpc', id, tags: vpc.tags };
      },
      subnet: () => {
        const subnet = region.subnets.get(id);
        if (!subnet) throw notFound('InvalidSubnetID.NotFound', 'subnet ID', [id]);
        return { type: 'subnet', id, tags: subnet.tags };
      },
    };
    const lookup = lookups[prefix];
    if (!lookup) throw new Ec2Error('InvalidID', `The ID '${id}' is not valid`);
    return lookup();
  }

  /** Every taggable resource of a region (for DescribeTags). */
  allTaggable(region: RegionState): TaggedResource[] {
    const out: TaggedResource[] = [];
    const add = (type: ResourceType, records: Iterable<{ id: string; tags: Tags }>) => {
      for (const r of records) out.push({ type, id: r.id, tags: r.tags });
    };
    add(
      'instance',
      [...region.instances.values()].filter((i) => this.instanceVisible(i)),
    );
    add('volume', region.volumes.values());
    add(
      'snapshot',
      [...region.snapshots.values()].filter((s) => s.ownerId === this.accountId),
    );
    add(
      'image',
      [...region.images.values()].filter((i) => i.ownerId === this.accountId),
    );
    add('key-pair', region.keyPairs.values());
    add('security-group', region.securityGroups.values());
    add('vpc', region.vpcs.values());
    add('subnet', region.subnets.values());
    return out;
  }

  // ---- inspection ------------------------------------------------------------------------

  /** Resources a run created that still exist in one region. */
  liveResources(regionName: string): LiveResources {
    const region = this.regions.get(regionName);
    if (!region) return { instances: [], volumes: [], snapshots: [], images: [], keyPairs: [], securityGroups: [] };
    const own = <T extends { ownerId: string; id: string }>(records: Iterable<T>) =>
      [...records].filter((r) => r.ownerId === this.accountId).map((r) => r.id);
    return {
      instances: [...region.instances.values()].filter((i) => i.state !== 'terminated').map((i) => i.id),
      volumes: [...region.volumes.keys()],
      snapshots: own(region.snapshots.values()),
      images: own(region.images.values()),
      keyPairs: [...region.keyPairs.values()].map((k) => k.name),
      securityGroups: [...region.securityGroups.values()].filter((g) => g.name !== 'default').map((g) => g.id),
    };
  }

  /** Live resources of every region that has any, keyed by region. */
  allLiveResources(): Record<string, LiveResources> {
    const out: Record<string, LiveResources> = {};
    for (const name of this.regions.keys()) {
      const live = this.liveResources(name);
      if (Object.values(live).some((ids: string[]) => ids.length > 0)) out[name] = live;
    }
    return out;
  }

  /** Direct access to a region's records, for assertions beyond the inspection lists. */
  records(regionName: string): RegionState {
    return this.region(regionName);
  }

  recordBackendError(context: string, error: unknown): void {
    this.backendErrors.push({ context, error });
  }
}
