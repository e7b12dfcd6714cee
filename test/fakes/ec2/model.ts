/** The records the EC2 fake keeps per region. Field names follow the EC2 API where they can. */

export type Tags = Map<string, string>;

export type InstanceStateName = 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';

export const INSTANCE_STATE_CODES: Record<InstanceStateName, number> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

export interface ImageMapping {
  deviceName: string;
  snapshotId?: string;
  volumeSize: number;
  volumeType: string;
  deleteOnTermination: boolean;
  encrypted: boolean;
  iops?: number;
  throughput?: number;
  kmsKeyId?: string;
}

export interface ImageRecord {
  id: string;
  name: string;
  description?: string;
  ownerId: string;
  ownerAlias?: string;
  state: 'pending' | 'available' | 'failed';
  stateReason?: { code: string; message: string };
  architecture: 'x86_64' | 'arm64';
  creationDate: Date;
  rootDeviceName: string;
  mappings: ImageMapping[];
  /** Launch permissions: `group=all` makes the image public. */
  launchGroupAll: boolean;
  launchUserIds: Set<string>;
  tags: Tags;
  /** Login user for the machine backend (ec2-user on Amazon Linux, ubuntu on Ubuntu). */
  sshUser: string;
  sourceInstanceId?: string;
  sourceImageId?: string;
  sourceImageRegion?: string;
  bootMode?: string;
}

export interface SnapshotRecord {
  id: string;
  volumeId: string;
  state: 'pending' | 'completed' | 'error';
  stateMessage?: string;
  startTime: Date;
  ownerId: string;
  description: string;
  volumeSize: number;
  encrypted: boolean;
  kmsKeyId?: string;
  tags: Tags;
}

export interface VolumeAttachment {
  instanceId: string;
  device: string;
  /** RunInstances attaches at once; AttachVolume goes attaching -> attached, DetachVolume detaching -> gone. */
  status: 'attaching' | 'attached' | 'detaching';
  attachTime: Date;
  deleteOnTermination: boolean;
}

export interface VolumeRecord {
  id: string;
  availabilityZone: string;
  size: number;
  volumeType: string;
  iops?: number;
  throughput?: number;
  encrypted: boolean;
  kmsKeyId?: string;
  snapshotId?: string;
  state: 'creating' | 'available' | 'in-use' | 'error';
  createTime: Date;
  attachment?: VolumeAttachment;
  tags: Tags;
}

export interface KeyPairRecord {
  id: string;
  name: string;
  fingerprint: string;
  keyType: 'ed25519' | 'rsa';
  publicKey: string;
  createTime: Date;
  tags: Tags;
}

export interface VpcRecord {
  id: string;
  cidrBlock: string;
  isDefault: boolean;
  tags: Tags;
}

export interface SubnetRecord {
  id: string;
  vpcId: string;
  cidrBlock: string;
  availabilityZone: string;
  defaultForAz: boolean;
  tags: Tags;
}

export interface IpPermission {
  ruleId: string;
  ipProtocol: string;
  fromPort?: number;
  toPort?: number;
  cidrIp?: string;
  sourceGroupId?: string;
  description?: string;
}

export interface SecurityGroupRecord {
  id: string;
  name: string;
  description: string;
  vpcId: string;
  ingress: IpPermission[];
  egress: IpPermission[];
  tags: Tags;
}

export interface InstanceRecord {
  id: string;
  reservationId: string;
  imageId: string;
  instanceType: string;
  keyName?: string;
  subnetId: string;
  vpcId: string;
  availabilityZone: string;
  securityGroupIds: string[];
  state: InstanceStateName;
  stateTransitionReason: string;
  stateReason?: { code: string; message: string };
  launchTime: Date;
  /** Monotonic ms of the launch, for the eventual-consistency window. */
  launchedAt: number;
  privateIp: string;
  /** Loopback address while running (a new one on every start, as EC2 does without an EIP). */
  publicIp?: string;
  architecture: 'x86_64' | 'arm64';
  rootDeviceName: string;
  /** Volume ids in attachment order: root first. */
  volumeIds: string[];
  clientToken: string;
  amiLaunchIndex: number;
  tags: Tags;
  sshUser: string;
  cpus: number;
  memoryMiB: number;
  /** Bumped by every state change, so stale asynchronous completions are ignored. */
  generation: number;
  /** True once the backend started the machine and until it is destroyed. */
  machineExists: boolean;
}

export interface ReservationRecord {
  id: string;
  instanceIds: string[];
  clientToken: string;
  fingerprint: string;
}

export interface RegionState {
  name: string;
  images: Map<string, ImageRecord>;
  snapshots: Map<string, SnapshotRecord>;
  volumes: Map<string, VolumeRecord>;
  keyPairs: Map<string, KeyPairRecord>;
  vpcs: Map<string, VpcRecord>;
  subnets: Map<string, SubnetRecord>;
  securityGroups: Map<string, SecurityGroupRecord>;
  instances: Map<string, InstanceRecord>;
  reservations: Map<string, ReservationRecord>;
  /** ClientToken -> reservation id (RunInstances) or image id (CopyImage), with the request's fingerprint. */
  clientTokens: Map<string, { action: string; resultId: string; fingerprint: string }>;
}

/** Resource types as DescribeTags and TagSpecification name them. */
export type ResourceType =
  | 'instance'
  | 'volume'
  | 'snapshot'
  | 'image'
  | 'key-pair'
  | 'security-group'
  | 'vpc'
  | 'subnet'
  | 'network-interface';
