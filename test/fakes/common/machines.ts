/**
 * What a cloud fake needs from "real machines". The fast backend (NullMachines) keeps disks and
 * machines as records only, for API-level tests. The VM-backed one (QemuMachines, qemu-machines.ts)
 * implements the same interface for end-to-end runs: disks become qcow2 files, machines become QEMU
 * guests reachable over SSH on their own loopback address, snapshots become image files.
 */

export interface MachineSpec {
  /** The fake's id for the instance (i-..., VM name, ...). */
  id: string;
  /** Disk ids in attachment order: root first, then data disks. */
  diskIds: string[];
  /** Login user and public key to inject (cloud-init NoCloud seed in the VM backend). */
  sshUser: string;
  sshPublicKey: string;
  /** Loopback address the machine's SSH (port 22) is reachable on, e.g. 127.0.0.12. */
  address: string;
  cpus: number;
  memoryMiB: number;
  /**
   * How data disks (by id) show themselves to the guest, so that the provisioning scripts find them
   * the way they do on the cloud. Disks not listed are plain virtio disks; the root disk always is.
   */
  devices?: Record<string, DiskDevice>;
}

export type DiskDevice =
  /** An EBS volume on a Nitro instance: an NVMe controller whose serial is the volume id without its dash. */
  | { kind: 'ebs'; volumeId: string }
  /** A GCE persistent disk: SCSI "Google PersistentDisk" whose id is the device name (by-id scsi-0Google_PersistentDisk_<name>). */
  | { kind: 'gce'; deviceName: string }
  /** An Azure data disk: SCSI "Msft Virtual Disk" at that LUN. */
  | { kind: 'azure'; lun: number };

export interface MachineBackend {
  /** Creates a disk, blank or from a snapshot (an image's disk). */
  createDisk(diskId: string, sizeGb: number, fromSnapshotId?: string): Promise<void>;
  deleteDisk(diskId: string): Promise<void>;
  /** Copies a disk's current content into a snapshot. The machine using it must be stopped. */
  snapshotDisk(diskId: string, snapshotId: string): Promise<void>;
  deleteSnapshot(snapshotId: string): Promise<void>;
  /** Boots a machine; resolves once it is started (not once SSH is up). */
  startMachine(spec: MachineSpec): Promise<void>;
  /** Graceful shutdown; resolves when the machine is powered off. */
  stopMachine(id: string): Promise<void>;
  /** Hard power-off and forget, for terminate. */
  destroyMachine(id: string): Promise<void>;
  /** What the machine printed on its serial console so far. */
  consoleOutput(id: string): Promise<string>;
  close(): Promise<void>;
}

/** Fast mode: nothing boots, every call succeeds at once. */
export class NullMachines implements MachineBackend {
  async createDisk(_diskId: string, _sizeGb: number, _fromSnapshotId?: string): Promise<void> {}
  async deleteDisk(_diskId: string): Promise<void> {}
  async snapshotDisk(_diskId: string, _snapshotId: string): Promise<void> {}
  async deleteSnapshot(_snapshotId: string): Promise<void> {}
  async startMachine(_spec: MachineSpec): Promise<void> {}
  async stopMachine(_id: string): Promise<void> {}
  async destroyMachine(_id: string): Promise<void> {}
  async consoleOutput(id: string): Promise<string> {
    return `fake console of ${id}\n`;
  }
  async close(): Promise<void> {}
}

/**
 * Hands out distinct loopback addresses (127.0.10.1, 127.0.10.2, ...) as instances' public IPs.
 * Give each fake its own prefix so that two fakes in one test never hand out the same address.
 */
export class LoopbackAddresses {
  private readonly free: number[] = Array.from({ length: 254 }, (_, i) => i + 1);
  constructor(private readonly prefix = '127.0.10.') {}
  allocate(): string {
    const host = this.free.shift();
    if (host === undefined) throw new Error(`fake ran out of loopback addresses under ${this.prefix}`);
    return `${this.prefix}${host}`;
  }
  /** Returns an address to the pool (an ephemeral IP released on stop or delete). */
  release(address: string): void {
    const host = Number(address.slice(this.prefix.length));
    if (address.startsWith(this.prefix) && host >= 1 && host <= 254 && !this.free.includes(host)) this.free.push(host);
  }
}
