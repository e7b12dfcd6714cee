/**
 * The provisioning steps of a plan: which script in provision/ runs, in which order, with which
 * environment and files. This is the contract between kiln and the shell scripts: every value a
 * script needs arrives here as an environment variable or a generated file, never in its source.
 */
import { stringify } from 'yaml';
import type { Definition, TargetName } from '../definition/schema.js';
import type { BundlePlan, ChartPlan, DiskPlan, PlannedFile, ProvisionStep, SoftwarePlan } from '../definition/plan.js';

/** Where kiln stages build-time files on the VM; generalization removes it. */
export const STAGING_DIR = '/var/tmp/kiln-build';
/** What stays in the image: charts, values, container images, the boot script's inputs. */
export const IMAGE_DIR = '/opt/kiln';

export interface ProvisionInputs {
  definition: Definition;
  target: TargetName;
  version: string;
  software: SoftwarePlan;
  dataDisk: DiskPlan;
  sshUser: string;
  /** Turns a path relative to the definition's folder into a local path. */
  localPath: (relative: string) => string;
}

/** Where an offline bundle is uploaded and unpacked on the VM (under the staging dir: generalize removes it). */
export const BUNDLE_FILE = `${STAGING_DIR}/bundle.tar`;
export const BUNDLE_DIR = `${STAGING_DIR}/bundle`;

export function provisionSteps(inputs: ProvisionInputs): ProvisionStep[] {
  const bundle = inputs.software.bundle ? [bundleStep(inputs.software.bundle)] : [];
  return [baseStep(inputs), ...bundle, dataVolumeStep(inputs), kernelStep(inputs), firewallStep(inputs), k3sStep(inputs), helmStep(inputs), chartsStep(inputs), versionStep(inputs), generalizeStep(inputs)];
}

/** With a bundle, the artifact steps read it instead of downloading: its unpacked directory. */
const bundleEnv = (software: SoftwarePlan): Record<string, string> => (software.bundle ? { KILN_BUNDLE_DIR: BUNDLE_DIR } : {});

function step(id: string, description: string, env: Record<string, string>, files: PlannedFile[] = [], runtimeEnv: string[] = []): ProvisionStep {
  return { id, description, script: `${id}.sh`, env: { KILN_STAGING_DIR: STAGING_DIR, KILN_IMAGE_DIR: IMAGE_DIR, ...env }, runtimeEnv, files };
}

const staged = (name: string) => `${STAGING_DIR}/files/${name}`;

function baseStep({ definition, software }: ProvisionInputs): ProvisionStep {
  return step('base', 'check the distribution and install the packages later steps need', {
    KILN_DATA_FS: definition.dataVolume.filesystem,
    KILN_FIREWALL_ENABLED: String(definition.host.firewall.enabled),
    // An offline build downloads nothing, packages included: missing tools are an error.
    ...(software.bundle ? { KILN_OFFLINE: 'true' } : {}),
  });
}

function bundleStep(bundle: BundlePlan): ProvisionStep {
  return step(
    'bundle',
    'unpack the offline bundle and verify every artifact against its manifest',
    { KILN_BUNDLE_FILE: BUNDLE_FILE, KILN_BUNDLE_DIR: BUNDLE_DIR, KILN_BUNDLE_MANIFEST_SHA256: bundle.manifestSha256 },
    [{ path: BUNDLE_FILE, mode: '0600', source: bundle.path, large: true }],
  );
}

/** How the guest finds the data disk, per target: the one fact a script cannot guess safely. */
export function dataDiskLocator(target: TargetName, dataDisk: DiskPlan): { kind: string; ref: string; runtime: boolean } {
  switch (target) {
    case 'aws':
      return { kind: 'aws-ebs', ref: '', runtime: true }; // the EBS volume id, known after launch
    case 'azure':
      return { kind: 'azure-lun', ref: dataDisk.deviceName ?? '0', runtime: false };
    case 'gcp':
      return { kind: 'gcp-device', ref: dataDisk.deviceName ?? 'kiln-data', runtime: false };
    case 'local':
      return { kind: 'virtio-serial', ref: dataDisk.deviceName ?? 'kiln-data', runtime: false };
  }
}

function dataVolumeStep({ definition, target, dataDisk }: ProvisionInputs): ProvisionStep {
  const { dataVolume } = definition;
  const locator = dataDiskLocator(target, dataDisk);
  const links = dataVolume.links.map((l) => `${l.path}\t${l.target}\n`).join('');
  return step(
    'data-volume',
    `format (when blank), label ${dataVolume.label} and mount the data volume at ${dataVolume.mountPoint}, and bind its directories`,
    {
      KILN_DATA_LABEL: dataVolume.label,
      KILN_DATA_FS: dataVolume.filesystem,
      KILN_DATA_MOUNT: dataVolume.mountPoint,
      KILN_DATA_DISK_KIND: locator.kind,
      ...(locator.runtime ? {} : { KILN_DATA_DISK_REF: locator.ref }),
      KILN_DATA_LINKS_FILE: staged('data-links.tsv'),
    },
    [{ path: staged('data-links.tsv'), mode: '0644', content: links }],
    locator.runtime ? ['KILN_DATA_DISK_REF'] : [],
  );
}

function kernelStep({ definition }: ProvisionInputs): ProvisionStep {
  const sysctls = Object.entries(definition.host.sysctls)
    .map(([key, value]) => `${key} = ${value}\n`)
    .join('');
  const limits = definition.host.limits;
  return step(
    'kernel',
    'set sysctls in /etc/sysctl.d and nofile/nproc limits in /etc/security/limits.d',
    { KILN_SYSCTL_FILE: staged('sysctl.conf'), KILN_LIMIT_NOFILE: String(limits?.nofile ?? ''), KILN_LIMIT_NPROC: String(limits?.nproc ?? '') },
    [{ path: staged('sysctl.conf'), mode: '0644', content: sysctls }],
  );
}

function firewallStep({ definition }: ProvisionInputs): ProvisionStep {
  const { firewall } = definition.host;
  const ports = (protocol: 'tcp' | 'udp') =>
    [...new Set(firewall.allow.filter((r) => r.protocol === protocol).map((r) => r.port))].sort((a, b) => a - b).join(' ');
  return step('firewall', 'allow SSH, the listed ports and the K3s pod and service networks; persist across reboot', {
    KILN_FIREWALL_ENABLED: String(firewall.enabled),
    KILN_FIREWALL_TCP_PORTS: ports('tcp'),
    KILN_FIREWALL_UDP_PORTS: ports('udp'),
    // The same values K3s is configured with below: a mismatch is a classic hand-written bug.
    KILN_CLUSTER_CIDR: definition.k3s.clusterCidr,
    KILN_SERVICE_CIDR: definition.k3s.serviceCidr,
  });
}

/**
 * Where the cluster token lives: on the data volume, created by the boot script on first boot. K3s
 * encrypts its bootstrap data (CA keys) in the datastore with this token, and the datastore is on
 * the data volume too, so a new root volume must find the same token there or K3s refuses to start.
 */
export function k3sTokenFile(definition: Definition): string {
  return `${definition.dataVolume.mountPoint.replace(/\/+$/, '')}/.kiln/k3s-token`;
}

/** /etc/rancher/k3s/config.yaml: the node's fixed settings, no cluster identity. */
export function k3sConfig(definition: Definition): string {
  const { k3s } = definition;
  const config: Record<string, unknown> = {
    'node-name': k3s.nodeName,
    'write-kubeconfig-mode': k3s.kubeconfigMode,
    'cluster-cidr': k3s.clusterCidr,
    'service-cidr': k3s.serviceCidr,
    'data-dir': k3s.dataDir,
    'token-file': k3sTokenFile(definition),
  };
  if (k3s.disable.length > 0) config.disable = k3s.disable;
  return stringify(config);
}

/** /etc/rancher/k3s/registries.yaml: every listed public registry mirrored to the internal one. */
export function registriesConfig(definition: Definition): string | undefined {
  const mirror = definition.k3s.registryMirror;
  if (!mirror) return undefined;
  const host = new URL(mirror.endpoint).host;
  const mirrors = Object.fromEntries(mirror.registries.map((r) => [r, { endpoint: [mirror.endpoint] }]));
  const configs = mirror.caFile ? { [host]: { tls: { ca_file: '/etc/rancher/k3s/registry-ca.pem' } } } : undefined;
  return stringify(configs ? { mirrors, configs } : { mirrors });
}

function k3sStep({ definition, software, localPath }: ProvisionInputs): ProvisionStep {
  const files: PlannedFile[] = [{ path: staged('k3s-config.yaml'), mode: '0600', content: k3sConfig(definition) }];
  const registries = registriesConfig(definition);
  if (registries) files.push({ path: staged('registries.yaml'), mode: '0600', content: registries });
  const caFile = definition.k3s.registryMirror?.caFile;
  if (caFile) files.push({ path: staged('registry-ca.pem'), mode: '0644', source: localPath(caFile) });
  return step(
    'k3s',
    `install K3s ${software.k3s.version} (verified) with its config, without starting it or creating any cluster identity`,
    {
      KILN_K3S_VERSION: software.k3s.version,
      KILN_K3S_BASE_URL: software.k3s.baseUrl,
      KILN_K3S_SHA256: software.k3s.sha256 ?? '',
      KILN_K3S_CONFIG_FILE: staged('k3s-config.yaml'),
      KILN_K3S_REGISTRIES_FILE: registries ? staged('registries.yaml') : '',
      KILN_K3S_REGISTRY_CA_FILE: caFile ? staged('registry-ca.pem') : '',
      KILN_K3S_DATA_DIR: definition.k3s.dataDir,
      ...bundleEnv(software),
    },
    files,
  );
}

function helmStep({ software }: ProvisionInputs): ProvisionStep {
  return step('helm', `install Helm ${software.helm.version} (verified)`, {
    KILN_HELM_VERSION: software.helm.version,
    KILN_HELM_BASE_URL: software.helm.baseUrl,
    KILN_HELM_SHA256: software.helm.sha256 ?? '',
    ...bundleEnv(software),
  });
}

/** One line per chart: release, chart, version, repository, namespace (tab-separated). */
export function chartsTable(charts: ChartPlan[]): string {
  return charts.map((c) => [c.release, c.chart, c.version, c.repository, c.namespace].join('\t') + '\n').join('');
}

function chartsStep({ definition, software, localPath }: ProvisionInputs): ProvisionStep {
  const files: PlannedFile[] = [
    { path: staged('charts.tsv'), mode: '0644', content: chartsTable(software.charts) },
    { path: staged('images.txt'), mode: '0644', content: [...new Set(software.charts.flatMap((c) => c.images))].map((i) => `${i}\n`).join('') },
  ];
  // Images of mirrored registries are pulled through the same mirror K3s is configured with.
  const mirror = definition.k3s.registryMirror;
  if (mirror?.caFile) files.push({ path: staged('registry-ca.pem'), mode: '0644', source: localPath(mirror.caFile) });
  for (const chart of software.charts) {
    chart.valuesFiles.forEach((source, i) => {
      files.push({ path: `${staged('values')}/${chart.release}/${String(i).padStart(2, '0')}.yaml`, mode: '0644', source });
    });
  }
  return step(
    'charts',
    `fetch ${software.charts.map((c) => `${c.chart} ${c.version}`).join(', ') || 'no charts'} into the image with their digests, stage the size's values and the container images`,
    {
      KILN_CHARTS_FILE: staged('charts.tsv'),
      KILN_IMAGES_FILE: staged('images.txt'),
      KILN_VALUES_DIR: staged('values'),
      KILN_K3S_DATA_DIR: definition.k3s.dataDir,
      KILN_REGISTRY_MIRROR: mirror?.endpoint ?? '',
      KILN_REGISTRY_MIRRORED: mirror ? mirror.registries.join(' ') : '',
      KILN_REGISTRY_CA_FILE: mirror?.caFile ? staged('registry-ca.pem') : '',
      ...bundleEnv(software),
    },
    files,
  );
}

function versionStep({ definition, version }: ProvisionInputs): ProvisionStep {
  const { versionPinning, dataVolume } = definition;
  return step('version', `pin version ${version} on the root volume and install the boot unit that deploys and upgrades`, {
    KILN_PRODUCT_VERSION: version,
    KILN_VERSION_ROOT_FILE: versionPinning.rootFile,
    KILN_VERSION_DATA_FILE: versionPinning.dataFile,
    KILN_OVERRIDE_VALUES_FILE: versionPinning.overrideValuesFile,
    KILN_DATA_MOUNT: dataVolume.mountPoint,
    KILN_DATA_LABEL: dataVolume.label,
    KILN_K3S_TOKEN_FILE: k3sTokenFile(definition),
  });
}

function generalizeStep({ definition, target, sshUser }: ProvisionInputs): ProvisionStep {
  return step('generalize', 'remove every per-machine identity, logs and caches; trim free space (runs last)', {
    KILN_TARGET: target,
    KILN_BUILD_USER: sshUser,
    KILN_K3S_DATA_DIR: definition.k3s.dataDir,
  });
}
