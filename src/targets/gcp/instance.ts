/**
 * GCE instances and their disks: insert (boot disk from an image, a data disk under a fixed device
 * name: new, blank or from an image, or an existing one attached as it is; ephemeral external
 * address, network tag, `ssh-keys` and guest-attribute metadata, labels everywhere), read its
 * address, stop it, delete it and its disks. The build's disks are created with autoDelete off:
 * they must outlive a stop and exist until their images do, and they are deleted explicitly (each
 * is in the ledger on its own). An existing disk is never deleted with the instance.
 */
import type { protos } from '@google-cloud/compute';
import { KilnError } from '../../core/errors.js';
import { done, notYet, waitFor } from '../../core/wait.js';
import type { GceApi, Scope } from './client.js';
import { isNotFound } from './errors.js';
import { networkRef } from './firewall.js';
import { runOperation } from './operations.js';

type Instance = protos.google.cloud.compute.v1.IInstance;

export const instancePath = (project: string, zone: string, name: string): string => `projects/${project}/zones/${zone}/instances/${name}`;
export const diskPath = (project: string, zone: string, name: string): string => `projects/${project}/zones/${zone}/disks/${name}`;

export interface DiskSpec {
  name: string;
  sizeGb: number;
  type?: string;
  /** The image it starts from; blank without one. */
  sourceImage?: string;
}

/** The data disk: a new one, or an existing disk (its path) attached as it is. */
export type DataDiskSpec = (DiskSpec & { deviceName: string }) | { deviceName: string; existing: string };

export interface InstanceSpec {
  project: string;
  zone: string;
  name: string;
  description: string;
  machineType: string;
  boot: DiskSpec & { sourceImage: string };
  data: DataDiskSpec;
  /** Whether the disks the insert creates go with the instance (an existing disk never does). */
  autoDelete: boolean;
  network: string;
  subnetwork?: string;
  networkTag: string;
  sshUser: string;
  sshPublicKey: string;
  labels: Record<string, string>;
}

function subnetworkRef(zone: string, subnetwork: string): string {
  return subnetwork.includes('/') ? subnetwork : `regions/${zone.replace(/-[a-z]$/, '')}/subnetworks/${subnetwork}`;
}

/** The instances.insert body. */
export function instanceResource(spec: InstanceSpec): Instance {
  const newDisk = (disk: DiskSpec) => ({
    diskName: disk.name,
    ...(disk.sourceImage ? { sourceImage: disk.sourceImage } : {}),
    diskSizeGb: String(disk.sizeGb),
    ...(disk.type ? { diskType: `zones/${spec.zone}/diskTypes/${disk.type}` } : {}),
    labels: spec.labels,
  });
  const data = spec.data;
  return {
    name: spec.name,
    description: spec.description,
    machineType: `zones/${spec.zone}/machineTypes/${spec.machineType}`,
    disks: [
      { boot: true, autoDelete: spec.autoDelete, deviceName: 'kiln-boot', initializeParams: newDisk(spec.boot) },
      // The guest finds it as /dev/disk/by-id/google-<deviceName>.
      'existing' in data
        ? { boot: false, autoDelete: false, deviceName: data.deviceName, source: data.existing }
        : { boot: false, autoDelete: spec.autoDelete, deviceName: data.deviceName, initializeParams: newDisk(data) },
    ],
    networkInterfaces: [
      {
        network: networkRef(spec.network),
        ...(spec.subnetwork ? { subnetwork: subnetworkRef(spec.zone, spec.subnetwork) } : {}),
        accessConfigs: [{ type: 'ONE_TO_ONE_NAT', name: 'External NAT' }],
      },
    ],
    tags: { items: [spec.networkTag] },
    metadata: {
      items: [
        { key: 'ssh-keys', value: `${spec.sshUser}:${spec.sshPublicKey}` },
        // The guest agent publishes the SSH host keys as guest attributes `hostkeys/<type>`.
        { key: 'enable-guest-attributes', value: 'TRUE' },
        // Only this instance's key: project-wide keys would become accounts baked into the image, or
        // log in to a validation instance that must accept nothing but the validation key.
        { key: 'block-project-ssh-keys', value: 'TRUE' },
      ],
    },
    labels: spec.labels,
    // No service account: nothing on kiln's instances needs Google credentials.
    serviceAccounts: [],
  };
}

export async function insertInstance(api: GceApi, scope: Scope, spec: InstanceSpec, timeoutMs: number): Promise<void> {
  const { project, zone } = spec;
  const resource = instancePath(project, zone, spec.name);
  await runOperation(api, scope, { project, what: 'creating instance', resource }, timeoutMs, (requestId) =>
    api.clients.instances.insert({ project, zone, requestId, instanceResource: instanceResource(spec) }),
  );
}

export async function getInstance(api: GceApi, scope: Scope, project: string, zone: string, name: string): Promise<Instance> {
  const [instance] = await api.call(scope, 'reading instance', instancePath(project, zone, name), () => api.clients.instances.get({ project, zone, instance: name }));
  return instance;
}

/** The instance's ephemeral external address. */
export async function natAddress(api: GceApi, scope: Scope, project: string, zone: string, name: string): Promise<string> {
  const instance = await getInstance(api, scope, project, zone, name);
  const natIP = instance.networkInterfaces?.flatMap((n) => n.accessConfigs ?? []).find((a) => a.natIP)?.natIP;
  if (!natIP) {
    throw new KilnError('CLOUD', `GCE: instance ${instancePath(project, zone, name)} has no external address (status ${instance.status})`, {
      resource: instancePath(project, zone, name),
      reason: 'noExternalAddress',
    });
  }
  return natIP;
}

/** Stops the instance and waits until it is TERMINATED. */
export async function stopInstance(api: GceApi, scope: Scope, project: string, zone: string, name: string, timeoutMs: number): Promise<void> {
  const resource = instancePath(project, zone, name);
  const deadline = Date.now() + timeoutMs;
  if ((await getInstance(api, scope, project, zone, name)).status !== 'TERMINATED') {
    await runOperation(api, scope, { project, what: 'stopping instance', resource }, timeoutMs, (requestId) =>
      api.clients.instances.stop({ project, zone, instance: name, requestId }),
    );
  }
  await waitFor(
    async () => {
      const { status } = await getInstance(api, scope, project, zone, name);
      return status === 'TERMINATED' ? done(status) : notYet(status);
    },
    { what: `instance ${resource} to be TERMINATED`, timeoutMs: Math.max(1, deadline - Date.now()), signal: scope.signal, initialDelayMs: api.pollMs },
  );
}

/** Deletes the instance; false when it was not there. Its disks stay: they are deleted on their own. */
export async function deleteInstance(api: GceApi, scope: Scope, project: string, zone: string, name: string, timeoutMs: number): Promise<boolean> {
  const resource = instancePath(project, zone, name);
  try {
    await runOperation(api, scope, { project, what: 'deleting instance', resource }, timeoutMs, (requestId) =>
      api.clients.instances.delete({ project, zone, instance: name, requestId }),
    );
    return true;
  } catch (err) {
    if (!isNotFound(err)) throw err;
    return false;
  }
}

/** Deletes the disk; false when it was not there. */
export async function deleteDisk(api: GceApi, scope: Scope, project: string, zone: string, name: string, timeoutMs: number): Promise<boolean> {
  const resource = diskPath(project, zone, name);
  try {
    await runOperation(api, scope, { project, what: 'deleting disk', resource }, timeoutMs, (requestId) =>
      api.clients.disks.delete({ project, zone, disk: name, requestId }),
    );
    return true;
  } catch (err) {
    if (!isNotFound(err)) throw err;
    return false;
  }
}
