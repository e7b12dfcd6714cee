/**
 * Request-body rules for instances.insert that are not about disks: machine types, network
 * interfaces (ONE_TO_ONE_NAT access configs), `ssh-keys` metadata, and the JSON rendering of an
 * instance.
 */
import { invalidField, required } from '../errors.js';
import { fingerprint } from '../fields.js';
import { globalRef, link, zonalPath, zonalRef, zonePath } from '../links.js';
import type { GceState, InstanceRecord, NetworkInterfaceRecord } from '../state.js';

export interface MachineType {
  name: string;
  cpus: number;
  memoryMiB: number;
}

const SHARED: Record<string, [number, number]> = {
  'e2-micro': [2, 1024],
  'e2-small': [2, 2048],
  'e2-medium': [2, 4096],
  'f1-micro': [1, 614],
  'g1-small': [1, 1740],
};
const FAMILIES = ['e2', 'n1', 'n2', 'n2d', 'n4', 'c2', 'c2d', 'c3', 'c3d', 't2d', 't2a'];
const MEMORY_PER_CPU: Record<string, number> = { standard: 4096, highmem: 8192, highcpu: 1024 };
const SIZES = [1, 2, 4, 8, 16, 32, 48, 64, 80, 96, 128];

/** Resolves `zones/<zone>/machineTypes/<type>` to cpus and memory; unknown types are 400 invalid. */
export function machineType(ref: unknown, project: string, zone: string): MachineType {
  const parsed = zonalRef('resource.machineType', ref, 'machineTypes', project);
  const unknown = () =>
    invalidField('resource.machineType', ref, `Machine type with name '${parsed.name}' does not exist in zone '${zone}'.`);
  if (parsed.zone !== zone) throw unknown();
  const shared = SHARED[parsed.name];
  if (shared) return { name: parsed.name, cpus: shared[0], memoryMiB: shared[1] };
  const custom = /^(?:([a-z0-9]+)-)?custom-(\d+)-(\d+)$/.exec(parsed.name);
  if (custom) {
    const cpus = Number(custom[2]);
    const memoryMiB = Number(custom[3]);
    if (cpus < 1 || memoryMiB % 256 !== 0 || memoryMiB < 1024) throw unknown();
    return { name: parsed.name, cpus, memoryMiB };
  }
  const std = /^([a-z0-9]+)-(standard|highmem|highcpu)-(\d+)$/.exec(parsed.name);
  const family = std?.[1];
  const kind = std?.[2];
  const cpus = Number(std?.[3]);
  if (!family || !kind || !FAMILIES.includes(family) || !SIZES.includes(cpus) || (cpus === 1 && family !== 'n1')) throw unknown();
  const perCpu = family === 'n1' ? { standard: 3840, highmem: 6656, highcpu: 921 }[kind] : MEMORY_PER_CPU[kind];
  return { name: parsed.name, cpus, memoryMiB: cpus * (perCpu ?? 4096) };
}

/** Validates networkInterfaces; natIPs are assigned later (at start). */
export function networkInterfaces(value: unknown, project: string, zone: string, nextPrivateIp: () => string): NetworkInterfaceRecord[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw invalidField('resource.networkInterfaces', '', 'At least one network interface is required.');
  }
  const region = zone.replace(/-[a-z]$/, '');
  return value.map((raw: unknown, i) => {
    const nic = (raw ?? {}) as { network?: unknown; subnetwork?: unknown; accessConfigs?: unknown };
    const field = `resource.networkInterfaces[${i}]`;
    const network = globalRef(`${field}.network`, nic.network ?? 'global/networks/default', 'networks', project);
    let subnetwork = `projects/${network.project}/regions/${region}/subnetworks/${network.name}`;
    if (nic.subnetwork !== undefined) {
      if (typeof nic.subnetwork !== 'string' || !/(?:^|\/)regions\/[a-z0-9-]+\/subnetworks\/[a-z0-9-]+$/.test(nic.subnetwork)) {
        throw invalidField(`${field}.subnetwork`, nic.subnetwork, 'The URL is malformed.');
      }
      subnetwork = nic.subnetwork.replace(/^https?:\/\/[^/]+\/compute\/v1\//, '');
    }
    const accessConfigs = nic.accessConfigs ?? [];
    if (!Array.isArray(accessConfigs) || accessConfigs.length > 1) {
      throw invalidField(`${field}.accessConfigs`, accessConfigs, 'At most one access config is allowed per network interface.');
    }
    return {
      name: `nic${i}`,
      network: `projects/${network.project}/global/networks/${network.name}`,
      subnetwork,
      networkIP: nextPrivateIp(),
      accessConfigs: accessConfigs.map((ac: unknown, j) => {
        const c = (ac ?? {}) as { type?: unknown; name?: unknown; natIP?: unknown; networkTier?: unknown };
        if (c.type !== undefined && c.type !== 'ONE_TO_ONE_NAT') {
          throw invalidField(`${field}.accessConfigs[${j}].type`, c.type, 'Only ONE_TO_ONE_NAT is supported.');
        }
        if (c.natIP !== undefined && c.natIP !== '') {
          throw invalidField(`${field}.accessConfigs[${j}].natIP`, c.natIP, 'The fake models ephemeral external IPs only.');
        }
        return {
          name: typeof c.name === 'string' ? c.name : 'External NAT',
          type: 'ONE_TO_ONE_NAT',
          natIP: '',
          networkTier: typeof c.networkTier === 'string' ? c.networkTier : 'PREMIUM',
        };
      }),
    };
  });
}

/** First usable `user:key-type key-blob [comment]` line of `ssh-keys` metadata. */
export function sshKeyFromMetadata(items: { key: string; value: string }[]): { user: string; publicKey: string } | undefined {
  const value = items.find((i) => i.key === 'ssh-keys')?.value ?? '';
  for (const line of value.split('\n')) {
    const m = /^([a-z_][a-z0-9_.-]*):((?:ssh|ecdsa|sk)-\S+)\s+(\S+)/.exec(line.trim());
    if (m?.[1] && m[2] && m[3]) return { user: m[1], publicKey: `${m[2]} ${m[3]}` };
  }
  return undefined;
}

export const metadataFlag = (items: { key: string; value: string }[], key: string) =>
  (items.find((i) => i.key === key)?.value ?? '').toUpperCase() === 'TRUE';

export function requireDisks(value: unknown): Record<string, unknown>[] {
  if (!Array.isArray(value) || value.length === 0) throw required('resource.disks');
  return value.map((d: unknown) => (d ?? {}) as Record<string, unknown>);
}

export function renderInstance(state: GceState, r: InstanceRecord): Record<string, unknown> {
  const metadataItems = r.metadata.length > 0 ? { items: r.metadata } : {};
  return {
    kind: 'compute#instance',
    id: r.id,
    creationTimestamp: r.creationTimestamp,
    name: r.name,
    ...(r.description ? { description: r.description } : {}),
    tags: { ...(r.tags.length > 0 ? { items: r.tags } : {}), fingerprint: fingerprint(r.tags) },
    machineType: link(zonalPath(r.project, r.zone, 'machineTypes', r.machineType)),
    status: r.status,
    zone: link(zonePath(r.project, r.zone)),
    canIpForward: false,
    networkInterfaces: r.networkInterfaces.map((n) => ({
      kind: 'compute#networkInterface',
      network: link(n.network),
      subnetwork: link(n.subnetwork),
      networkIP: n.networkIP,
      name: n.name,
      ...(n.accessConfigs.length > 0
        ? {
            accessConfigs: n.accessConfigs.map((a) => ({
              kind: 'compute#accessConfig',
              type: a.type,
              name: a.name,
              ...(a.natIP ? { natIP: a.natIP } : {}),
              networkTier: a.networkTier,
            })),
          }
        : {}),
      fingerprint: fingerprint(n),
      stackType: 'IPV4_ONLY',
    })),
    disks: r.disks.map((d) => {
      const disk = state.getDisk(r.project, r.zone, d.diskName);
      return {
        kind: 'compute#attachedDisk',
        type: 'PERSISTENT',
        mode: d.mode,
        source: state.diskLink({ project: r.project, zone: r.zone, name: d.diskName }),
        deviceName: d.deviceName,
        index: d.index,
        boot: d.boot,
        autoDelete: d.autoDelete,
        interface: d.interface,
        ...(disk ? { diskSizeGb: String(disk.sizeGb), architecture: disk.architecture } : {}),
      };
    }),
    metadata: { kind: 'compute#metadata', fingerprint: fingerprint(r.metadata), ...metadataItems },
    ...(r.serviceAccounts.length > 0 ? { serviceAccounts: r.serviceAccounts } : {}),
    selfLink: state.instanceLink(r),
    scheduling: { onHostMaintenance: 'MIGRATE', automaticRestart: true, preemptible: false, provisioningModel: 'STANDARD' },
    cpuPlatform: r.status === 'RUNNING' ? 'Intel Broadwell' : 'Unknown CPU Platform',
    labels: Object.keys(r.labels).length > 0 ? r.labels : undefined,
    labelFingerprint: fingerprint(r.labels),
    startRestricted: false,
    deletionProtection: false,
    ...(r.lastStartTimestamp ? { lastStartTimestamp: r.lastStartTimestamp } : {}),
    ...(r.lastStopTimestamp ? { lastStopTimestamp: r.lastStopTimestamp } : {}),
    fingerprint: fingerprint({ id: r.id, status: r.status, metadata: r.metadata, labels: r.labels }),
  };
}
