/**
 * instances: insert, get, list, delete. insert creates the instance (PROVISIONING) and its disks
 * (CREATING) at once; its operation backs each disk (MachineBackend.createDisk, root from the
 * image's snapshot), goes STAGING, boots the machine (startMachine with the `ssh-keys` user/key and
 * a loopback address as natIP) and ends RUNNING. delete destroys the machine, deletes autoDelete
 * disks and detaches the others. Operations on one instance run one after another, as in GCE.
 */
import { createHash } from 'node:crypto';
import type { GceCore, Handler } from '../core.js';
import { param } from '../core.js';
import { OperationFailure, alreadyExists, inUseBy, invalidField, notFound } from '../errors.js';
import { checkLabels, checkMetadataItems, checkTags, int64 } from '../fields.js';
import { checkName, checkZone, link, zonalPath, zonalRef, zonePath } from '../links.js';
import { aggregatedPage, listPage } from '../list.js';
import { renderOperation } from '../operations.js';
import type { AttachedDiskRecord, DiskRecord, GceState, ImageRecord, InstanceRecord } from '../state.js';
import { createDiskRecord, materializeDisk } from './disks.js';
import {
  machineType,
  metadataFlag,
  networkInterfaces,
  renderInstance,
  requireDisks,
  sshKeyFromMetadata,
} from './instance-spec.js';

export const INSTANCE_STAGING = 'instance.staging';
export const INSTANCE_RUNNING = 'instance.running';
export const INSTANCE_TERMINATED = 'instance.terminated';
export const INSTANCE_DELETED = 'instance.deleted';
export const GUEST_HOSTKEYS = 'guest.hostkeys';

const instancePath = (project: string, zone: string, name: string) => zonalPath(project, zone, 'instances', name);

export function requireInstance(state: GceState, project: string, zone: string, name: string): InstanceRecord {
  checkZone(zone);
  const instance = state.getInstance(project, zone, name);
  if (!instance) throw notFound(instancePath(project, zone, name));
  return instance;
}

const chains = new WeakMap<InstanceRecord, Promise<void>>();

/** Runs `work` after every earlier operation on the same instance has finished. */
export async function serialized(instance: InstanceRecord, work: () => Promise<void>): Promise<void> {
  const previous = chains.get(instance) ?? Promise.resolve();
  let release = () => {};
  const mine = new Promise<void>((resolve) => (release = resolve));
  chains.set(instance, previous.then(() => mine));
  try {
    await previous;
    await work();
  } finally {
    release();
  }
}

/** STAGING -> startMachine -> RUNNING, with a fresh ephemeral natIP per start, like GCE. */
export async function boot(core: GceCore, instance: InstanceRecord): Promise<void> {
  const { state, operations, machines, addresses } = core;
  instance.status = 'STAGING';
  await operations.after(INSTANCE_STAGING);
  const address = addresses.allocate();
  const nat = instance.networkInterfaces.flatMap((n) => n.accessConfigs)[0];
  if (nat) nat.natIP = address;
  instance.natIP = nat ? address : undefined;
  const key = sshKeyFromMetadata(instance.metadata);
  const disks = instance.disks.map((d) => ({ id: state.getDisk(instance.project, instance.zone, d.diskName)?.backendId ?? d.diskName, deviceName: d.deviceName }));
  await machines.startMachine({
    id: instance.backendId,
    diskIds: disks.map((d) => d.id),
    sshUser: key?.user ?? '',
    sshPublicKey: key?.publicKey ?? '',
    address,
    cpus: instance.cpus,
    memoryMiB: instance.memoryMiB,
    devices: Object.fromEntries(disks.map((d) => [d.id, { kind: 'gce', deviceName: d.deviceName }])),
  });
  await operations.after(INSTANCE_RUNNING);
  instance.status = 'RUNNING';
  instance.lastStartTimestamp = state.now();
  if (core.options.synthesizeHostKeys && metadataFlag(instance.metadata, 'enable-guest-attributes')) {
    core.transitions.schedule(GUEST_HOSTKEYS, async () => {
      if (instance.status !== 'RUNNING' || instance.guestAttributes.has('hostkeys/ssh-ed25519')) return;
      const console = await machines.consoleOutput(instance.backendId);
      if (!console.includes('-----BEGIN SSH HOST KEY KEYS-----')) {
        instance.guestAttributes.set('hostkeys/ssh-ed25519', syntheticEd25519(instance.id));
      }
    });
  }
}

/** A well-formed ssh-ed25519 public key blob derived from the instance id. */
function syntheticEd25519(seed: string): string {
  const type = Buffer.from('ssh-ed25519');
  const key = createHash('sha256').update(seed).digest();
  const len = (n: number) => Buffer.from([0, 0, 0, n]);
  return Buffer.concat([len(type.length), type, len(key.length), key]).toString('base64');
}

interface PlannedDisk {
  attached: AttachedDiskRecord;
  disk: DiskRecord;
  created: boolean;
  image?: ImageRecord;
}

function planDisks(state: GceState, body: Record<string, unknown>, project: string, zone: string, name: string): PlannedDisk[] {
  const raw = requireDisks(body.disks);
  const names = new Set<string>();
  return raw.map((d, i) => {
    const field = `resource.disks[${i}]`;
    const boot = d.boot === true;
    if (i === 0 && !boot) throw invalidField(`${field}.boot`, String(d.boot ?? false), 'Boot disk must be the first disk attached to the instance.');
    if (i > 0 && boot) throw invalidField(`${field}.boot`, 'true', 'Only one boot disk is allowed.');
    const attached: AttachedDiskRecord = {
      diskName: '',
      deviceName: typeof d.deviceName === 'string' ? d.deviceName : `persistent-disk-${i}`,
      boot,
      autoDelete: d.autoDelete === true,
      index: i,
      mode: d.mode === 'READ_ONLY' ? 'READ_ONLY' : 'READ_WRITE',
      interface: d.interface === 'NVME' ? 'NVME' : 'SCSI',
    };
    let planned: PlannedDisk;
    if (d.initializeParams !== undefined) {
      const p = d.initializeParams as Record<string, unknown>;
      if (boot && p.sourceImage === undefined) throw invalidField(`${field}.initializeParams.sourceImage`, '', 'Boot disk must have a source image.');
      const { disk, image } = createDiskRecord(state, {
        project,
        zone,
        name: typeof p.diskName === 'string' ? p.diskName : i === 0 ? name : `${name}-${i}`,
        sizeGb: p.diskSizeGb === undefined ? undefined : int64(`${field}.initializeParams.diskSizeGb`, p.diskSizeGb),
        type: p.diskType,
        sourceImage: p.sourceImage,
        labels: checkLabels(`${field}.initializeParams.labels`, p.labels),
        field: `${field}.initializeParams`,
      });
      planned = { attached, disk, created: true, image };
    } else if (d.source !== undefined) {
      const ref = zonalRef(`${field}.source`, d.source, 'disks', project);
      const disk = state.getDisk(ref.project, ref.zone, ref.name);
      if (!disk || ref.zone !== zone) throw invalidField(`${field}.source`, d.source, 'The referenced disk resource cannot be found.');
      const user = disk.users[0];
      if (user && attached.mode === 'READ_WRITE') throw inUseBy(zonalPath(disk.project, disk.zone, 'disks', disk.name), user.replace(/^.*\/compute\/v1\//, ''));
      planned = { attached, disk, created: false };
    } else {
      throw invalidField(field, '', 'One of source or initializeParams must be specified.');
    }
    if (names.has(planned.disk.name)) throw alreadyExists(zonalPath(project, zone, 'disks', planned.disk.name));
    names.add(planned.disk.name);
    planned.attached.diskName = planned.disk.name;
    return planned;
  });
}

let privateIp = 1;
const nextPrivateIp = () => `10.128.${Math.floor(privateIp / 250) % 250}.${(privateIp++ % 250) + 2}`;

export const insertInstance: Handler = (core, call) => {
  const { state, operations, machines } = core;
  const project = param(call, 'project');
  const zone = param(call, 'zone');
  checkZone(zone);
  const body = call.body;
  const name = checkName('resource.name', body.name);
  if (state.getInstance(project, zone, name)) throw alreadyExists(instancePath(project, zone, name));
  const type = machineType(body.machineType, project, zone);
  const labels = checkLabels('resource.labels', body.labels);
  const tags = checkTags('resource.tags.items', (body.tags as { items?: unknown } | undefined)?.items);
  const metadata = checkMetadataItems('resource.metadata.items', (body.metadata as { items?: unknown } | undefined)?.items);
  const nics = networkInterfaces(body.networkInterfaces, project, zone, nextPrivateIp);
  const disks = planDisks(state, body, project, zone, name);

  const id = state.ids.id();
  const instance: InstanceRecord = {
    project,
    zone,
    name,
    id,
    creationTimestamp: state.now(),
    status: 'PROVISIONING',
    description: typeof body.description === 'string' ? body.description : undefined,
    machineType: type.name,
    cpus: type.cpus,
    memoryMiB: type.memoryMiB,
    disks: disks.map((d) => d.attached),
    networkInterfaces: nics,
    tags,
    metadata,
    labels,
    serviceAccounts: Array.isArray(body.serviceAccounts)
      ? (body.serviceAccounts as { email?: string; scopes?: string[] }[]).map((s) => ({ email: s.email ?? 'default', scopes: s.scopes ?? [] }))
      : [],
    guestAttributes: new Map(),
    backendId: `vm-${name}-${id}`,
  };
  const selfLink = state.instanceLink(instance);
  for (const d of disks) {
    d.disk.users.push(selfLink);
    d.disk.lastAttachTimestamp = state.now();
    if (d.created) state.putDisk(d.disk);
  }
  state.putInstance(instance);

  const materialized = new Set<DiskRecord>();
  const op = operations.start({ project, zone, operationType: 'insert', targetLink: selfLink, targetId: id }, call, {
    run: () =>
      serialized(instance, async () => {
        for (const d of disks.filter((p) => p.created)) {
          await materializeDisk(core, d.disk, d.image);
          materialized.add(d.disk);
        }
        await boot(core, instance);
      }),
    rollback: async () => {
      state.dropInstance(instance);
      for (const d of disks) {
        d.disk.users = d.disk.users.filter((u) => u !== selfLink);
        if (!d.created) continue;
        state.dropDisk(d.disk);
        if (materialized.has(d.disk)) await machines.deleteDisk(d.disk.backendId);
      }
    },
  });
  return renderOperation(op);
};

export const getInstance: Handler = ({ state }, call) =>
  renderInstance(state, requireInstance(state, param(call, 'project'), param(call, 'zone'), param(call, 'instance')));

export const listInstances: Handler = ({ state }, call) => {
  const project = param(call, 'project');
  const zone = param(call, 'zone');
  checkZone(zone);
  const items = [...state.instances.values()]
    .filter((i) => i.project === project && i.zone === zone)
    .map((i) => renderInstance(state, i));
  return {
    kind: 'compute#instanceList',
    id: `${zonePath(project, zone)}/instances`,
    ...listPage(call, items),
    selfLink: link(`${zonePath(project, zone)}/instances`),
  };
};

export const aggregatedListInstances: Handler = ({ state }, call) => {
  const project = param(call, 'project');
  const items = [...state.instances.values()].filter((i) => i.project === project).map((i) => ({ scope: `zones/${i.zone}`, item: renderInstance(state, i) }));
  return {
    kind: 'compute#instanceAggregatedList',
    id: `projects/${project}/aggregated/instances`,
    ...aggregatedPage(call, 'instances', items),
    selfLink: link(`projects/${project}/aggregated/instances`),
  };
};

export const deleteInstance: Handler = (core, call) => {
  const { state, operations, machines } = core;
  const instance = requireInstance(state, param(call, 'project'), param(call, 'zone'), param(call, 'instance'));
  const selfLink = state.instanceLink(instance);
  const op = operations.start(
    { project: instance.project, zone: instance.zone, operationType: 'delete', targetLink: selfLink, targetId: instance.id },
    call,
    {
      run: () =>
        serialized(instance, async () => {
          if (state.getInstance(instance.project, instance.zone, instance.name) !== instance) {
            throw new OperationFailure({ code: 'RESOURCE_NOT_FOUND', message: `The resource '${instancePath(instance.project, instance.zone, instance.name)}' was not found`, httpStatus: 404 });
          }
          instance.status = 'STOPPING';
          await machines.destroyMachine(instance.backendId);
          await operations.after(INSTANCE_DELETED);
          for (const attached of instance.disks) {
            const disk = state.getDisk(instance.project, instance.zone, attached.diskName);
            if (!disk) continue;
            disk.users = disk.users.filter((u) => u !== selfLink);
            disk.lastDetachTimestamp = state.now();
            if (attached.autoDelete) {
              await machines.deleteDisk(disk.backendId);
              state.dropDisk(disk);
            }
          }
          state.dropInstance(instance);
        }),
    },
  );
  return renderOperation(op);
};
