/**
 * The Plan: a definition resolved for one target, size and product version. Pure data, JSON
 * serialisable and deterministic (the run id is an input; no clock, no randomness). Everything a
 * build does is in its plan; drivers and the provisioner receive the plan, never the YAML.
 */
import type { SizeName, TargetName } from './schema.js';

export const PLAN_FORMAT = 1;

export interface Plan {
  format: typeof PLAN_FORMAT;
  runId: string;
  /** Unique within a run: `<run id>-<target>-<size>`, lowercase. */
  buildId: string;
  definition: { name: string; path: string; sha256: string };
  target: TargetName;
  size: SizeName;
  version: string;
  /** Tags (labels on GCE) on every resource the build creates. */
  tags: Record<string, string>;
  /** Target-specific: where and what to launch, and how to name and publish the result. */
  targetPlan: TargetPlan;
  disks: { root: DiskPlan; data: DiskPlan };
  access: { sshUser: string; sshCidr?: string };
  software: SoftwarePlan;
  provision: ProvisionStep[];
  /** What `kiln validate` runs on an instance booted from the image, in order. */
  checks: PlannedCheck[];
  /** Pipeline steps in order, with the kinds of resource each creates. */
  steps: PipelineStepPlan[];
}

export interface PlannedCheck {
  name: string;
  /** Shell command run with sudo on the booted instance. Values reach it only through env. */
  command: string;
  env: Record<string, string>;
  /** Expected stdout, trimmed; without it, exit code 0 is a pass. */
  expect?: string;
  /** kiln: derived from the definition's settings; definition: from its checks list. */
  source: 'kiln' | 'definition';
}

export interface DiskPlan {
  sizeGb: number;
  /** Cloud disk type (gp3, pd-ssd, Premium_LRS...); absent for local. */
  type?: string;
  iops?: number;
  throughput?: number;
  /** Name the guest sees the disk by: GCE device name, local virtio serial, Azure LUN. */
  deviceName?: string;
}

export interface SoftwarePlan {
  k3s: ArtifactPlan;
  helm: ArtifactPlan;
  charts: ChartPlan[];
  /** The internal registry K3s pulls through (registries.yaml) and images are copied from. */
  registryMirror?: RegistryMirrorPlan;
  /** The offline bundle every artifact comes from (`kiln build --bundle`): nothing is downloaded. */
  bundle?: BundlePlan;
}

export interface RegistryMirrorPlan {
  endpoint: string;
  /** Registries mirrored to it: docker.io, registry.k8s.io... */
  registries: string[];
  /** Its CA certificate (PEM), a local path resolved against the definition's folder. */
  caFile?: string;
}

export interface BundlePlan {
  /** The bundle file on this machine. */
  path: string;
  /** sha256 of its manifest (kiln-bundle.json), which the VM checks the unpacked bundle against. */
  manifestSha256: string;
}

export interface ArtifactPlan {
  version: string;
  /** Base URL of the release site or its mirror. */
  baseUrl: string;
  /** Pinned sha256 from the definition; otherwise verified against the published checksum file. */
  sha256?: string;
}

export interface ChartPlan {
  release: string;
  chart: string;
  version: string;
  repository: string;
  namespace: string;
  images: string[];
  /** Values files for this size, local paths (resolved against the definition's folder), in order. */
  valuesFiles: string[];
}

export interface ProvisionStep {
  id: string;
  description: string;
  /** Script path relative to the repository's provision/ folder. */
  script: string;
  /** Environment for the script: the only way values reach it. */
  env: Record<string, string>;
  /** Variables only the target knows once the VM exists (e.g. the data volume's EBS id). */
  runtimeEnv: string[];
  /** Files uploaded before the step runs. */
  files: PlannedFile[];
}

export interface PlannedFile {
  /** Absolute path on the VM. */
  path: string;
  mode: string;
  /** Either generated content, or a local file to copy. */
  content?: string;
  source?: string;
  /** Sent on its own (resumable, sha256-checked on arrival) rather than in the staging tree: the bundle. */
  large?: boolean;
}

/** `validate` runs only with `kiln build --validate`, between capture and publish. */
export type PipelineStepName = 'prepare' | 'launch' | 'connect' | 'provision' | 'stop' | 'capture' | 'validate' | 'publish';

export interface PipelineStepPlan {
  name: PipelineStepName;
  description: string;
  /** Kinds of cloud resource (or local file) this step creates, each recorded in the ledger. */
  creates: string[];
}

export type TargetPlan = AwsTargetPlan | AzureTargetPlan | GcpTargetPlan | LocalTargetPlan;

export interface AwsTargetPlan {
  kind: 'aws';
  region: string;
  instanceType: string;
  baseImage: { owners: string[]; name: string; architecture: 'x86_64' };
  subnetId?: string;
  encrypted: boolean;
  kmsKeyId?: string;
  names: { keyPair: string; securityGroup: string; instance: string; image: string };
  publish: { regions: string[]; public: boolean; accounts: string[] };
}

export interface AzureTargetPlan {
  kind: 'azure';
  location: string;
  subscriptionId?: string;
  vmSize: string;
  baseImage: { publisher: string; offer: string; sku: string; version: string };
  /** A temporary group named here, or the existing group to build in. */
  resourceGroup: { name: string; temporary: boolean };
  names: { vm: string; vnet: string; subnet: string; nsg: string; publicIp: string; nic: string; osDisk: string; dataDisk: string; image: string };
  publish: {
    managedImage: boolean;
    gallery?: {
      resourceGroup: string;
      name: string;
      imageDefinition: string;
      identifier: { publisher: string; offer: string; sku: string };
      /** Gallery image versions must be MAJOR.MINOR.PATCH. */
      version: string;
      replicationRegions: { region: string; replicas: number }[];
      readers: string[];
    };
  };
}

export interface GcpTargetPlan {
  kind: 'gcp';
  project?: string;
  zone: string;
  machineType: string;
  network: string;
  subnetwork?: string;
  baseImage: { project: string; family: string };
  names: { instance: string; bootDisk: string; dataDisk: string; firewall: string; networkTag: string; rootImage: string; dataImage: string };
  publish: { family?: string; storageLocations: string[]; iam: { role: string; members: string[] }[]; deprecatePrevious: boolean };
}

export interface LocalTargetPlan {
  kind: 'local';
  baseImage: { build: 'debian-12' } | { path: string };
  accelerator: 'auto' | 'kvm' | 'tcg';
  cpus: number;
  memoryMiB: number;
  names: { vm: string; rootImage: string; dataImage: string };
  publish: { formats: ('qcow2' | 'raw' | 'vmdk' | 'vhd' | 'gce-tar')[] };
}
