/**
 * The image definition format: the single source of truth. Types are inferred from it and
 * `images/schema.json` is generated from it (`npm run schema`). Every object is strict, so a typo in
 * a key is an error, never silently ignored.
 */
import { z } from 'zod';
import {
  FS_LABEL,
  HELM_VERSION,
  K3S_VERSION,
  SHA256,
  SYSCTL_KEY,
  UNIX_USER,
  absolutePath,
  cloudId,
  dnsLabel,
  ipv4Cidr,
  productVersion,
  relativePath,
  url,
} from './values.js';

export const TARGETS = ['aws', 'azure', 'gcp', 'local'] as const;
export type TargetName = (typeof TARGETS)[number];
export const SIZES = ['XS', 'S', 'M', 'L', 'XL'] as const;
export type SizeName = (typeof SIZES)[number];

const sshUser = z.string().regex(UNIX_USER, 'a Linux user name: lowercase letters, digits, "_" and "-"');
/** A file next to the definition (values files, CA certificates), relative to the definition's folder. */
const localFile = relativePath.describe('a file path relative to the definition file');
const port = z.number().int().min(1).max(65535);
const gigabytes = z.number().int().min(1).max(65536);

// ---------------------------------------------------------------------------------------------
// Targets: where the base VM comes from and how kiln reaches it
// ---------------------------------------------------------------------------------------------

const awsTarget = z.strictObject({
  region: cloudId('AWS region'),
  baseImage: z.strictObject({
    owners: z.array(z.string().regex(/^(\d{12}|amazon|aws-marketplace|self)$/, 'a 12-digit account id, "amazon", "aws-marketplace" or "self"')).min(1),
    name: z.string().regex(/^[A-Za-z0-9()[\]./\-'@_*?]+$/, 'an AMI name filter (letters, digits, ()[] ./-\'@_ and the wildcards * ?)'),
  }),
  sshUser,
  subnetId: z.string().regex(/^subnet-[0-9a-f]+$/, 'a subnet id like subnet-0abc123').optional(),
  /** Where SSH may come from; default: the builder's own public address /32. */
  sshCidr: ipv4Cidr.optional(),
  encrypted: z.boolean().default(true),
  kmsKeyId: z.string().regex(/^[A-Za-z0-9:/_-]+$/, 'a KMS key id, alias or ARN').optional(),
});

const azureTarget = z.strictObject({
  location: cloudId('Azure location'),
  subscriptionId: z.string().uuid().optional(),
  /** An existing resource group to build in; default: a temporary group per build. */
  resourceGroup: z.string().regex(/^[-\w._()]{1,90}$/, 'an Azure resource group name').optional(),
  baseImage: z.strictObject({
    publisher: cloudId('image publisher'),
    offer: cloudId('image offer'),
    sku: cloudId('image sku'),
    version: cloudId('image version').default('latest'),
  }),
  sshUser,
  sshCidr: ipv4Cidr.optional(),
});

const gcpTarget = z.strictObject({
  project: z.string().regex(/^[a-z][-a-z0-9]{4,28}[a-z0-9]$/, 'a GCP project id').optional(),
  zone: cloudId('GCE zone'),
  network: dnsLabel('network name').default('default'),
  subnetwork: dnsLabel('subnetwork name').optional(),
  baseImage: z.strictObject({
    project: z.string().regex(/^[a-z][-a-z0-9]{4,28}[a-z0-9]$/, 'a GCP project id'),
    family: dnsLabel('image family'),
  }),
  sshUser,
  sshCidr: ipv4Cidr.optional(),
});

const localTarget = z.strictObject({
  baseImage: z.union([
    z.strictObject({ build: z.enum(['debian-12']) }),
    z.strictObject({ path: z.string().min(1) }),
  ]),
  sshUser,
  accelerator: z.enum(['auto', 'kvm', 'tcg']).default('auto'),
});

// ---------------------------------------------------------------------------------------------
// Sizes: machine shape and disk types per target
// ---------------------------------------------------------------------------------------------

const ebsVolume = z.strictObject({
  type: z.enum(['gp3', 'gp2', 'io1', 'io2', 'st1', 'sc1']),
  iops: z.number().int().min(100).max(256000).optional(),
  throughput: z.number().int().min(125).max(2000).optional(),
});

const diskSizes = z.strictObject({ rootGb: gigabytes, dataGb: gigabytes });

const sizeSpec = z.strictObject({
  aws: z.strictObject({ instanceType: cloudId('EC2 instance type'), rootVolume: ebsVolume, dataVolume: ebsVolume }).optional(),
  azure: z
    .strictObject({
      vmSize: cloudId('Azure VM size'),
      osDiskType: z.enum(['Standard_LRS', 'StandardSSD_LRS', 'Premium_LRS', 'PremiumV2_LRS', 'UltraSSD_LRS']),
      dataDiskType: z.enum(['Standard_LRS', 'StandardSSD_LRS', 'Premium_LRS', 'PremiumV2_LRS', 'UltraSSD_LRS']),
    })
    .optional(),
  gcp: z
    .strictObject({
      machineType: cloudId('GCE machine type'),
      bootDiskType: z.enum(['pd-standard', 'pd-balanced', 'pd-ssd', 'pd-extreme', 'hyperdisk-balanced']),
      dataDiskType: z.enum(['pd-standard', 'pd-balanced', 'pd-ssd', 'pd-extreme', 'hyperdisk-balanced']),
    })
    .optional(),
  local: z.strictObject({ cpus: z.number().int().min(1).max(64), memoryMiB: z.number().int().min(512).max(262144) }).optional(),
  /** Overrides the definition's default disk sizes for this size. */
  disks: diskSizes.optional(),
  /** Values files per chart (by chart release name), applied in order. */
  values: z.record(z.string(), z.array(localFile)).default({}),
});

// ---------------------------------------------------------------------------------------------
// What goes on the VM
// ---------------------------------------------------------------------------------------------

const k3s = z.strictObject({
  version: z.string().regex(K3S_VERSION, 'a K3s release like v1.29.6+k3s2'),
  /** Pins the sha256 of the K3s binary; default: verified against the release's sha256sum file. */
  sha256: z.string().regex(SHA256, '64 lowercase hex digits').optional(),
  nodeName: dnsLabel('node name'),
  clusterCidr: ipv4Cidr.default('10.42.0.0/16'),
  serviceCidr: ipv4Cidr.default('10.43.0.0/16'),
  disable: z.array(z.enum(['traefik', 'servicelb', 'metrics-server', 'local-storage', 'coredns'])).default([]),
  kubeconfigMode: z.string().regex(/^0[0-7]{3}$/, 'an octal file mode like 0644').default('0600'),
  /** K3s data directory; put it on the data volume by listing it in dataVolume.links. */
  dataDir: absolutePath.default('/var/lib/rancher/k3s'),
  registryMirror: z
    .strictObject({
      endpoint: url,
      /** CA certificate (PEM) trusted for the mirror, relative to the definition. */
      caFile: localFile.optional(),
      registries: z.array(z.string().regex(/^[a-z0-9.-]+(:\d+)?$/, 'a registry host like docker.io')).default(['docker.io', 'registry.k8s.io', 'ghcr.io', 'quay.io']),
    })
    .optional(),
});

const chart = z.strictObject({
  /** Release name; also the key for values files in sizes. */
  name: dnsLabel('release name'),
  chart: dnsLabel('chart name'),
  repository: url,
  /** Chart version; default: the product version being built. */
  version: z.string().regex(/^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?$/, 'a chart version like 5.2.0').optional(),
  namespace: dnsLabel('namespace').default('default'),
  /** Container images the chart needs, baked into the image so it deploys offline. */
  images: z.array(z.string().regex(/^[a-z0-9][a-z0-9./:_@-]*$/, 'an image reference like docker.io/org/name:tag')).default([]),
});

const firewallRule = z.strictObject({
  port,
  protocol: z.enum(['tcp', 'udp']).default('tcp'),
  description: z.string().max(80).optional(),
});

const host = z.strictObject({
  sysctls: z
    .record(z.string().regex(SYSCTL_KEY, 'a sysctl key like vm.max_map_count'), z.union([z.number().int(), z.string().regex(/^[0-9 ]+$/, 'digits and spaces')]))
    .default({}),
  limits: z.strictObject({ nofile: z.number().int().min(1024), nproc: z.number().int().min(1024) }).optional(),
  firewall: z.strictObject({ enabled: z.boolean().default(true), allow: z.array(firewallRule).default([]) }).default({ enabled: true, allow: [] }),
});

const dataVolume = z.strictObject({
  label: z.string().regex(FS_LABEL, 'a filesystem label: letters, digits, "_" and "-", at most 16 (ext4) or 12 (xfs) characters'),
  filesystem: z.enum(['ext4', 'xfs']).default('ext4'),
  mountPoint: absolutePath,
  /** Directories on the root volume bind-mounted from a directory on the data volume. */
  links: z.array(z.strictObject({ path: absolutePath, target: relativePath })).default([]),
});

const versionPinning = z.strictObject({
  /** Version file on the root volume: the version this image carries. */
  rootFile: absolutePath.default('/etc/kiln/version'),
  /** Version file on the data volume, relative to its mount point: the version the data is at. */
  dataFile: relativePath.default('.kiln/version'),
  /** Values file on the data volume applied on top of the size's values, relative to its mount point. */
  overrideValuesFile: relativePath.default('.kiln/override-values.yaml'),
});

const sources = z.strictObject({
  k3s: url.default('https://github.com/k3s-io/k3s/releases/download'),
  helm: url.default('https://get.helm.sh'),
  /** A chart repository that replaces every chart's repository (an internal mirror). */
  charts: url.optional(),
});

// ---------------------------------------------------------------------------------------------
// Publishing and checks
// ---------------------------------------------------------------------------------------------

const publish = z.strictObject({
  aws: z
    .strictObject({
      regions: z.array(cloudId('AWS region')).default([]),
      launchPermissions: z
        .strictObject({ public: z.boolean().default(false), accounts: z.array(z.string().regex(/^\d{12}$/, 'a 12-digit AWS account id')).default([]) })
        .default({ public: false, accounts: [] }),
    })
    .optional(),
  gcp: z
    .strictObject({
      family: dnsLabel('image family').optional(),
      storageLocations: z.array(cloudId('storage location')).default([]),
      iam: z
        .array(z.strictObject({ role: z.string().regex(/^roles\/[A-Za-z0-9.]+$/, 'a role like roles/compute.imageUser'), members: z.array(z.string().regex(/^(allAuthenticatedUsers|allUsers|(user|group|serviceAccount|domain):[A-Za-z0-9@._-]+)$/, 'an IAM member like group:eng@example.com')).min(1) }))
        .default([]),
      deprecatePrevious: z.boolean().default(false),
    })
    .optional(),
  azure: z
    .strictObject({
      managedImage: z.boolean().default(true),
      gallery: z
        .strictObject({
          resourceGroup: z.string().regex(/^[-\w._()]{1,90}$/, 'an Azure resource group name'),
          name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.]{0,78}[A-Za-z0-9]$/, 'a gallery name: letters, digits, "_" and "."'),
          imageDefinition: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,78}[A-Za-z0-9]$/, 'an image definition name'),
          publisher: cloudId('publisher'),
          offer: cloudId('offer'),
          sku: cloudId('sku'),
          replicationRegions: z.array(z.strictObject({ region: cloudId('Azure region'), replicas: z.number().int().min(1).max(100).default(1) })).default([]),
          readers: z.array(z.string().uuid()).default([]),
        })
        .optional(),
    })
    .optional(),
  local: z
    .strictObject({ formats: z.array(z.enum(['qcow2', 'raw', 'vmdk', 'vhd', 'gce-tar'])).default(['qcow2']) })
    .optional(),
});

const check = z.strictObject({
  name: z.string().min(1).max(80),
  /** A command run with sudo on the booted image. */
  command: z.string().min(1),
  /** Expected stdout (trimmed); default: only the exit code 0 is expected. */
  expect: z.string().optional(),
});

export const definitionSchema = z.strictObject({
  $schema: z.string().optional(),
  name: dnsLabel('definition name'),
  description: z.string().max(200).optional(),
  targets: z
    .strictObject({ aws: awsTarget.optional(), azure: azureTarget.optional(), gcp: gcpTarget.optional(), local: localTarget.optional() })
    .refine((t) => Object.values(t).some(Boolean), 'at least one target'),
  disks: diskSizes,
  sizes: z.partialRecord(z.enum(SIZES), sizeSpec).refine((s) => Object.keys(s).length > 0, 'at least one size (XS, S, M, L, XL)'),
  k3s,
  helm: z.strictObject({ version: z.string().regex(HELM_VERSION, 'a Helm 3 release like v3.14.4'), sha256: z.string().regex(SHA256, '64 lowercase hex digits').optional() }),
  charts: z.array(chart).default([]),
  host: host.default({ sysctls: {}, firewall: { enabled: true, allow: [] } }),
  dataVolume,
  versionPinning: versionPinning.default({ rootFile: '/etc/kiln/version', dataFile: '.kiln/version', overrideValuesFile: '.kiln/override-values.yaml' }),
  sources: sources.default({ k3s: 'https://github.com/k3s-io/k3s/releases/download', helm: 'https://get.helm.sh' }),
  publish: publish.default({}),
  checks: z.array(check).default([]),
});

export type Definition = z.infer<typeof definitionSchema>;
export type DefinitionInput = z.input<typeof definitionSchema>;
export type SizeSpec = z.infer<typeof sizeSpec>;
export type ChartSpec = z.infer<typeof chart>;
export type AwsTargetSpec = z.infer<typeof awsTarget>;
export type AzureTargetSpec = z.infer<typeof azureTarget>;
export type GcpTargetSpec = z.infer<typeof gcpTarget>;
export type LocalTargetSpec = z.infer<typeof localTarget>;
export type PublishSpec = z.infer<typeof publish>;
export type CheckSpec = z.infer<typeof check>;
export { productVersion };
