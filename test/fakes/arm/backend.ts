/**
 * Wraps the MachineBackend (NullMachines in fast mode, QemuMachines end to end) and remembers which disks,
 * snapshots and machines the fake has created in it and not yet deleted, so that cleanup tests can
 * assert that nothing is left behind below the API as well.
 */
import type { MachineBackend, MachineSpec } from '../common/machines.js';

export interface BackendInventory {
  disks: string[];
  snapshots: string[];
  /** Machine ids with their state as far as the fake drove them. */
  machines: Record<string, 'running' | 'stopped'>;
}

export class TrackedMachines implements MachineBackend {
  private readonly disks = new Set<string>();
  private readonly snapshots = new Set<string>();
  private readonly machines = new Map<string, 'running' | 'stopped'>();
  /** Every call made, in order, e.g. `startMachine vm-...`; for tests asserting side effects. */
  readonly calls: string[] = [];

  constructor(readonly inner: MachineBackend) {}

  async createDisk(diskId: string, sizeGb: number, fromSnapshotId?: string): Promise<void> {
    this.calls.push(`createDisk ${diskId} ${sizeGb}${fromSnapshotId ? ` ${fromSnapshotId}` : ''}`);
    await this.inner.createDisk(diskId, sizeGb, fromSnapshotId);
    this.disks.add(diskId);
  }

  async deleteDisk(diskId: string): Promise<void> {
    this.calls.push(`deleteDisk ${diskId}`);
    await this.inner.deleteDisk(diskId);
    this.disks.delete(diskId);
  }

  async snapshotDisk(diskId: string, snapshotId: string): Promise<void> {
    this.calls.push(`snapshotDisk ${diskId} ${snapshotId}`);
    await this.inner.snapshotDisk(diskId, snapshotId);
    this.snapshots.add(snapshotId);
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    this.calls.push(`deleteSnapshot ${snapshotId}`);
    await this.inner.deleteSnapshot(snapshotId);
    this.snapshots.delete(snapshotId);
  }

  async startMachine(spec: MachineSpec): Promise<void> {
    this.calls.push(`startMachine ${spec.id} ${spec.address} ${spec.sshUser}`);
    await this.inner.startMachine(spec);
    this.machines.set(spec.id, 'running');
  }

  async stopMachine(id: string): Promise<void> {
    this.calls.push(`stopMachine ${id}`);
    await this.inner.stopMachine(id);
    if (this.machines.has(id)) this.machines.set(id, 'stopped');
  }

  async destroyMachine(id: string): Promise<void> {
    this.calls.push(`destroyMachine ${id}`);
    await this.inner.destroyMachine(id);
    this.machines.delete(id);
  }

  consoleOutput(id: string): Promise<string> {
    return this.inner.consoleOutput(id);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  inventory(): BackendInventory {
    return {
      disks: [...this.disks].sort(),
      snapshots: [...this.snapshots].sort(),
      machines: Object.fromEntries([...this.machines].sort(([a], [b]) => a.localeCompare(b))),
    };
  }
}
