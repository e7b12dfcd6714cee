/**
 * A MachineBackend of real QEMU VMs, made of the local target's parts (overlays and blank disks,
 * the NoCloud seed, launchVm with its accelerator probe, QMP power-off), for end-to-end runs of
 * the cloud fakes:
 *
 *  - disks are qcow2 files. A disk from a snapshot is an overlay over the snapshot's file; every
 *    snapshot this backend did not make (the fakes' public AMIs, GCE images, marketplace images)
 *    stands for `publicImage`, the cached Debian base image.
 *  - a snapshot is a standalone qcow2 copy of the disk (qemu-img convert), or a hard link to the
 *    snapshot a never-booted disk was made from (EC2 CopyImage, gallery replicas: no copying).
 *    A snapshot still backing a disk is removed only once that disk is gone.
 *  - a machine boots its root disk (virtio) and its data disks dressed as the cloud's
 *    (guest-devices.ts), with a NoCloud seed for its user and key and a host key of its own that
 *    cloud-init prints on the console, as on a cloud. SSH is forwarded from the machine's own
 *    loopback address, port 22; the guest network is restricted to `guestForwards`.
 *  - the console is the machine's serial log, kept across restarts.
 *
 * CPUs and memory are capped (a 32 GiB instance type gets 4 GiB here).
 */
import { link, mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { generateKeyPair, type SshKeyPair } from '../../../src/ssh/index.js';
import { detectAccel } from '../../../src/targets/local/accel.js';
import { createBlankDisk, createOverlay, launchVm, type GuestForward, type VmHandle } from '../../../src/targets/local/qemu.js';
import { runTool } from '../../../src/targets/local/run.js';
import { createSeedIso } from '../../../src/targets/local/seed.js';
import { guestDisk, vendorDataFor } from './guest-devices.js';
import type { MachineBackend, MachineSpec } from './machines.js';

export interface QemuMachinesOptions {
  /** Holds every disk, snapshot and machine; removed by close(). */
  workDir: string;
  /** The disk image that every public (not backend-made) snapshot stands for. */
  publicImage: string;
  /** Host servers the guests may reach, e.g. the test's artifact mirror. */
  guestForwards?: GuestForward[];
  /** Caps on a machine's size whatever its instance type says; default 2 CPUs, 4096 MiB. */
  maxCpus?: number;
  maxMemoryMiB?: number;
  /** How long a guest may take to power off before QEMU is stopped harder; default 5 min. */
  stopTimeoutMs?: number;
  /** Every console line of every machine. */
  onConsoleLine?: (machineId: string, line: string) => void;
}

interface Disk {
  path: string;
  /** The backend snapshot it is an overlay of. */
  backing?: string;
  /** Never attached to a booted machine: its content is still exactly its backing snapshot's. */
  pristine: boolean;
}

interface Machine {
  dir: string;
  hostKey: SshKeyPair;
  vm?: VmHandle;
  diskIds: string[];
}

const STOP_TIMEOUT_MS = 5 * 60_000;

export class QemuMachines implements MachineBackend {
  private readonly disks = new Map<string, Disk>();
  /** Snapshot id -> file; `deleted` ones wait for the disks still backed by them. */
  private readonly snapshots = new Map<string, { path: string; deleted: boolean }>();
  private readonly machines = new Map<string, Machine>();

  constructor(private readonly options: QemuMachinesOptions) {}

  async createDisk(diskId: string, sizeGb: number, fromSnapshotId?: string): Promise<void> {
    if (this.disks.has(diskId)) throw new Error(`disk ${diskId} exists already`);
    const file = await this.file('disks', diskId);
    const own = fromSnapshotId === undefined ? undefined : this.snapshots.get(fromSnapshotId);
    if (own?.deleted) throw new Error(`snapshot ${fromSnapshotId} is deleted`);
    if (fromSnapshotId === undefined) await createBlankDisk(file, sizeGb);
    else await createOverlay(own?.path ?? this.options.publicImage, file, sizeGb);
    this.disks.set(diskId, { path: file, ...(own ? { backing: fromSnapshotId } : {}), pristine: true });
  }

  async deleteDisk(diskId: string): Promise<void> {
    const disk = this.disks.get(diskId);
    if (!disk) return;
    const user = this.runningMachineWith(diskId);
    if (user) throw new Error(`disk ${diskId} is in use by running machine ${user}`);
    this.disks.delete(diskId);
    await rm(disk.path, { force: true });
    if (disk.backing) await this.removeIfUnused(disk.backing);
  }

  async snapshotDisk(diskId: string, snapshotId: string): Promise<void> {
    const disk = this.disks.get(diskId);
    if (!disk) throw new Error(`no disk ${diskId}`);
    const user = this.runningMachineWith(diskId);
    if (user) throw new Error(`disk ${diskId} is in use by running machine ${user}: stop it first`);
    const file = await this.file('snapshots', snapshotId);
    const source = disk.backing ? this.snapshots.get(disk.backing) : undefined;
    if (disk.pristine && source) {
      await link(source.path, file);
    } else {
      await runTool('qemu-img', ['convert', '-O', 'qcow2', disk.path, `${file}.partial`]);
      await rename(`${file}.partial`, file);
    }
    this.snapshots.set(snapshotId, { path: file, deleted: false });
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    const snapshot = this.snapshots.get(snapshotId);
    if (!snapshot) return;
    snapshot.deleted = true;
    await this.removeIfUnused(snapshotId);
  }

  async startMachine(spec: MachineSpec): Promise<void> {
    const existing = this.machines.get(spec.id);
    if (existing?.vm && !existing.vm.hasExited()) throw new Error(`machine ${spec.id} is running already`);
    if (!spec.address) throw new Error(`machine ${spec.id} has no address to forward SSH from`);
    const [root, ...data] = spec.diskIds.map((id) => {
      const disk = this.disks.get(id);
      if (!disk) throw new Error(`machine ${spec.id}: no disk ${id}`);
      return { id, disk };
    });
    if (!root) throw new Error(`machine ${spec.id} has no disks`);
    const machine = existing ?? { dir: await this.file('machines', spec.id), hostKey: generateKeyPair(`${spec.id}-host`), diskIds: [] };
    await mkdir(machine.dir, { recursive: true });
    const devices = data.map((d) => spec.devices?.[d.id]);
    const seedIso = path.join(machine.dir, 'seed.iso');
    const vendorData = vendorDataFor(devices);
    await createSeedIso({
      path: seedIso,
      instanceId: spec.id,
      hostname: hostnameOf(spec.id),
      user: { name: spec.sshUser, sshPublicKey: spec.sshPublicKey },
      hostKey: machine.hostKey,
      ...(vendorData ? { vendorData } : {}),
    });
    const accel = await detectAccel();
    machine.diskIds = spec.diskIds;
    this.machines.set(spec.id, machine);
    machine.vm = await launchVm({
      name: `kiln-fake-${safeName(spec.id)}`,
      workDir: machine.dir,
      rootDisk: root.disk.path,
      dataDisks: data.map((d, i) => ({ path: d.disk.path, ...guestDisk(devices[i], i + 1) })),
      seedIso,
      cpus: Math.min(spec.cpus, this.options.maxCpus ?? 2),
      memoryMiB: Math.min(spec.memoryMiB, this.options.maxMemoryMiB ?? 4096),
      sshForward: { hostAddress: spec.address, hostPort: 22 },
      guestForwards: this.options.guestForwards ?? [],
      network: 'restricted',
      accel: accel.accel,
      cpu: accel.cpu,
      serialLogPath: path.join(machine.dir, 'serial.log'),
      onConsoleLine: (line) => this.options.onConsoleLine?.(spec.id, line),
    });
    for (const { disk } of [root, ...data]) disk.pristine = false;
  }

  async stopMachine(id: string): Promise<void> {
    const vm = this.machines.get(id)?.vm;
    if (!vm) return;
    await vm.shutdown({ timeoutMs: this.options.stopTimeoutMs ?? STOP_TIMEOUT_MS });
  }

  async destroyMachine(id: string): Promise<void> {
    const machine = this.machines.get(id);
    if (!machine) return;
    await machine.vm?.kill();
    this.machines.delete(id);
    await rm(machine.dir, { recursive: true, force: true });
  }

  async consoleOutput(id: string): Promise<string> {
    const machine = this.machines.get(id);
    return machine ? readFile(path.join(machine.dir, 'serial.log'), 'utf8').catch(() => '') : '';
  }

  /** What the backend holds, for tests checking that nothing is left. */
  inventory(): { disks: string[]; snapshots: string[]; runningMachines: string[] } {
    return {
      disks: [...this.disks.keys()],
      snapshots: [...this.snapshots].filter(([, s]) => !s.deleted).map(([id]) => id),
      runningMachines: [...this.machines].filter(([, m]) => m.vm && !m.vm.hasExited()).map(([id]) => id),
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.machines.values()].map((m) => m.vm?.kill()));
    this.machines.clear();
    await rm(this.options.workDir, { recursive: true, force: true });
  }

  private runningMachineWith(diskId: string): string | undefined {
    for (const [id, m] of this.machines) if (m.vm && !m.vm.hasExited() && m.diskIds.includes(diskId)) return id;
    return undefined;
  }

  private async removeIfUnused(snapshotId: string): Promise<void> {
    const snapshot = this.snapshots.get(snapshotId);
    if (!snapshot?.deleted || [...this.disks.values()].some((d) => d.backing === snapshotId)) return;
    this.snapshots.delete(snapshotId);
    await rm(snapshot.path, { force: true });
  }

  private async file(kind: 'disks' | 'snapshots' | 'machines', id: string): Promise<string> {
    const dir = path.join(this.options.workDir, kind);
    await mkdir(dir, { recursive: true });
    return path.join(dir, kind === 'machines' ? safeName(id) : `${safeName(id)}.qcow2`);
  }
}

/** A file-name-safe, collision-free form of a fake's id (ARM ids hold slashes and colons). */
function safeName(id: string): string {
  if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$/.test(id)) return id;
  const hash = createHash('sha256').update(id).digest('hex').slice(0, 12);
  return `${id.replace(/[^A-Za-z0-9._-]+/g, '_').slice(-60)}-${hash}`;
}

/** A valid host name from a machine id (the fakes' ids are close to it already). */
function hostnameOf(id: string): string {
  return id.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63).replace(/-+$/, '') || 'vm';
}
