/**
 * The fake's world: every image, disk, instance, firewall and operation it knows, keyed the way
 * Compute Engine scopes them (global per project, zonal per project+zone), and the inspection API
 * tests use to see what is live ("nothing left after cleanup").
 */
import type { OperationErrorSpec } from './errors.js';
import { IdSource, fingerprint, timestamp, type Labels, type MetadataItem } from './fields.js';
import { globalPath, link, zonalPath } from './links.js';

export interface DeprecationStatus {
  state: 'ACTIVE' | 'DEPRECATED' | 'OBSOLETE' | 'DELETED';
  replacement?: string;
  deprecated?: string;
  obsolete?: string;
  deleted?: string;
}

export interface IamBinding {
  role: string;
  members: string[];
}

export interface IamPolicy {
  version: number;
  etag: string;
  bindings: IamBinding[];
}

export interface ImageRecord {
  project: string;
  name: string;
  id: string;
  creationTimestamp: string;
  status: 'PENDING' | 'READY' | 'FAILED' | 'DELETING';
  family?: string;
  description?: string;
  labels: Labels;
  diskSizeGb: number;
  archiveSizeBytes: number;
  storageLocations: string[];
  architecture: string;
  guestOsFeatures: string[];
  licenses: string[];
  sourceDisk?: string;
  sourceDiskId?: string;
  sourceImage?: string;
  sourceImageId?: string;
  deprecated?: DeprecationStatus;
  iam: IamPolicy;
  /** Snapshot id in the MachineBackend holding this image's content. */
  snapshotId: string;
  /** Seeded public image (not created through the API). */
  seeded: boolean;
}

export interface DiskRecord {
  project: string;
  zone: string;
  name: string;
  id: string;
  creationTimestamp: string;
  status: 'CREATING' | 'READY' | 'DELETING' | 'FAILED';
  sizeGb: number;
  type: string;
  labels: Labels;
  sourceImage?: string;
  sourceImageId?: string;
  /** selfLinks of the instances using the disk. */
  users: string[];
  lastAttachTimestamp?: string;
  lastDetachTimestamp?: string;
  architecture?: string;
  /** Disk id in the MachineBackend. */
  backendId: string;
}

export interface AttachedDiskRecord {
  diskName: string;
  deviceName: string;
  boot: boolean;
  autoDelete: boolean;
  index: number;
  mode: 'READ_WRITE' | 'READ_ONLY';
  interface: 'SCSI' | 'NVME';
}

export interface AccessConfigRecord {
  name: string;
  type: string;
  natIP: string;
  networkTier: string;
}

export interface NetworkInterfaceRecord {
  name: string;
  network: string;
  subnetwork: string;
  networkIP: string;
  accessConfigs: AccessConfigRecord[];
}

export type InstanceStatus = 'PROVISIONING' | 'STAGING' | 'RUNNING' | 'STOPPING' | 'TERMINATED';

export interface InstanceRecord {
  project: string;
  zone: string;
  name: string;
  id: string;
  creationTimestamp: string;
  status: InstanceStatus;
  description?: string;
  machineType: string;
  cpus: number;
  memoryMiB: number;
  disks: AttachedDiskRecord[];
  networkInterfaces: NetworkInterfaceRecord[];
  tags: string[];
  metadata: MetadataItem[];
  labels: Labels;
  serviceAccounts: { email: string; scopes: string[] }[];
  lastStartTimestamp?: string;
  lastStopTimestamp?: string;
  /** Guest attributes by `namespace/key` (e.g. `hostkeys/ssh-ed25519`). */
  guestAttributes: Map<string, string>;
  /** Machine id in the MachineBackend. */
  backendId: string;
  /** The loopback address handed out as the instance's external (NAT) IP. */
  natIP?: string;
}

export interface FirewallRecord {
  project: string;
  name: string;
  id: string;
  creationTimestamp: string;
  description?: string;
  network: string;
  priority: number;
  direction: 'INGRESS' | 'EGRESS';
  sourceRanges: string[];
  destinationRanges: string[];
  sourceTags: string[];
  targetTags: string[];
  allowed: { IPProtocol: string; ports?: string[] }[];
  denied: { IPProtocol: string; ports?: string[] }[];
  disabled: boolean;
}

export interface OperationRecord {
  id: string;
  name: string;
  project: string;
  /** Zone name for zonal operations, undefined for global ones. */
  zone?: string;
  operationType: string;
  targetLink: string;
  targetId: string;
  status: 'PENDING' | 'RUNNING' | 'DONE';
  progress: number;
  insertTime: string;
  startTime?: string;
  endTime?: string;
  user: string;
  error?: OperationErrorSpec;
  requestId?: string;
}

const globalKey = (project: string, name: string) => `${project}/${name}`;
const zonalKey = (project: string, zone: string, name: string) => `${project}/${zone}/${name}`;

/** Everything a test may want to assert is gone after cleanup. */
export interface LiveResources {
  instances: { project: string; zone: string; name: string; status: string; natIP?: string }[];
  disks: { project: string; zone: string; name: string; status: string; users: string[] }[];
  /** Images created through the API (seeded public images are not listed). */
  images: { project: string; name: string; status: string; family?: string }[];
  firewalls: { project: string; name: string }[];
}

export class GceState {
  readonly ids = new IdSource();
  readonly images = new Map<string, ImageRecord>();
  readonly disks = new Map<string, DiskRecord>();
  readonly instances = new Map<string, InstanceRecord>();
  readonly firewalls = new Map<string, FirewallRecord>();
  readonly operations = new Map<string, OperationRecord>();

  getImage = (project: string, name: string) => this.images.get(globalKey(project, name));
  putImage = (r: ImageRecord) => void this.images.set(globalKey(r.project, r.name), r);
  dropImage = (r: ImageRecord) => void this.images.delete(globalKey(r.project, r.name));

  getDisk = (project: string, zone: string, name: string) => this.disks.get(zonalKey(project, zone, name));
  putDisk = (r: DiskRecord) => void this.disks.set(zonalKey(r.project, r.zone, r.name), r);
  dropDisk = (r: DiskRecord) => void this.disks.delete(zonalKey(r.project, r.zone, r.name));

  getInstance = (project: string, zone: string, name: string) => this.instances.get(zonalKey(project, zone, name));
  putInstance = (r: InstanceRecord) => void this.instances.set(zonalKey(r.project, r.zone, r.name), r);
  dropInstance = (r: InstanceRecord) => void this.instances.delete(zonalKey(r.project, r.zone, r.name));

  getFirewall = (project: string, name: string) => this.firewalls.get(globalKey(project, name));
  putFirewall = (r: FirewallRecord) => void this.firewalls.set(globalKey(r.project, r.name), r);
  dropFirewall = (r: FirewallRecord) => void this.firewalls.delete(globalKey(r.project, r.name));

  /** Operations are addressed by name or by numeric id within their scope. */
  findOperation(project: string, zone: string | undefined, nameOrId: string): OperationRecord | undefined {
    const byName = this.operations.get(nameOrId);
    const op = byName ?? [...this.operations.values()].find((o) => o.id === nameOrId);
    return op && op.project === project && op.zone === zone ? op : undefined;
  }

  newIamPolicy(bindings: IamBinding[] = [], version = 1): IamPolicy {
    return { version, bindings, etag: fingerprint({ bindings, n: this.ids.id() }) };
  }

  // ---- inspection API (plain methods for tests) ----

  /** Every live resource; `images` lists only images created through the API. */
  live(): LiveResources {
    return {
      instances: [...this.instances.values()].map((i) => ({
        project: i.project,
        zone: i.zone,
        name: i.name,
        status: i.status,
        natIP: i.natIP,
      })),
      disks: [...this.disks.values()].map((d) => ({
        project: d.project,
        zone: d.zone,
        name: d.name,
        status: d.status,
        users: [...d.users],
      })),
      images: [...this.images.values()]
        .filter((i) => !i.seeded)
        .map((i) => ({ project: i.project, name: i.name, status: i.status, family: i.family })),
      firewalls: [...this.firewalls.values()].map((f) => ({ project: f.project, name: f.name })),
    };
  }

  /** True when no instance, disk, created image or firewall is left. */
  isEmpty(): boolean {
    const live = this.live();
    return live.instances.length + live.disks.length + live.images.length + live.firewalls.length === 0;
  }

  /** Operations not yet DONE (a test can wait for zero before asserting on backends). */
  pendingOperations(): OperationRecord[] {
    return [...this.operations.values()].filter((o) => o.status !== 'DONE');
  }

  /** Publishes a guest attribute, as the guest agent would (e.g. `hostkeys/ssh-ed25519`). */
  setGuestAttribute(project: string, zone: string, instance: string, path: string, value: string): void {
    const record = this.getInstance(project, zone, instance);
    if (!record) throw new Error(`fake GCE: no instance ${zonalKey(project, zone, instance)}`);
    record.guestAttributes.set(path, value);
  }

  imageLink = (r: { project: string; name: string }) => link(globalPath(r.project, 'images', r.name));
  diskLink = (r: { project: string; zone: string; name: string }) => link(zonalPath(r.project, r.zone, 'disks', r.name));
  instanceLink = (r: { project: string; zone: string; name: string }) =>
    link(zonalPath(r.project, r.zone, 'instances', r.name));
  firewallLink = (r: { project: string; name: string }) => link(globalPath(r.project, 'firewalls', r.name));

  now = () => timestamp();
}
