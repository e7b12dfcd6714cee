/**
 * The QEMU command line of a local build VM, as a pure function of its settings. Networking is
 * user-mode, with restrict=on unless asked for an open network: a restricted guest reaches nothing
 * but the forwards listed here, and every forward listens on (or connects to) a host loopback
 * address only.
 */
import { InputError } from '../../core/errors.js';
import type { Accel } from './accel.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

export interface DiskSpec {
  path: string;
  /** qemu format name, e.g. qcow2 or raw. */
  format: string;
}

export interface DataDiskSpec extends DiskSpec {
  /**
   * virtio (default): the guest's /dev/disk/by-id/virtio-<serial>, at most 20 characters. nvme: the
   * controller's serial (/sys/block/nvmeXnY/device/serial), at most 20. scsi: the unit's serial and
   * device identification (page 0x83), so udev names it scsi-0<vendor>_<product>_<serial>.
   */
  serial: string;
  /** How the disk is attached; the cloud VM fakes use nvme and scsi to look like EBS, GCE and Azure disks. */
  bus?: DiskBus;
}

export type DiskBus =
  | { kind: 'virtio' }
  | { kind: 'nvme' }
  /** A disk on a virtio-scsi controller; vendor at most 8 characters, product at most 16. */
  | { kind: 'scsi'; vendor?: string; product?: string; lun?: number };

export interface GuestForward {
  /** Address and port the guest connects to, inside the user network (e.g. 10.0.2.100:8080). */
  guestAddress: string;
  guestPort: number;
  /** Host loopback server the connection is relayed to. */
  hostAddress: string;
  hostPort: number;
}

export interface QemuArgsInput {
  name: string;
  accel: Accel;
  /** QEMU CPU model; by default "host" under KVM and "max" under TCG. */
  cpu?: string;
  cpus: number;
  memoryMiB: number;
  rootDisk: DiskSpec;
  dataDisks: DataDiskSpec[];
  seedIso?: string;
  sshHostAddress: string;
  /** 0 lets the host pick; the real port is read back over QMP. */
  sshHostPort: number;
  guestForwards: GuestForward[];
  /** restricted (default): the guest reaches only the forwards; open: also the host's network (NAT). */
  network?: 'restricted' | 'open';
  qmpSocket: string;
  serialLogPath: string;
  pidFile: string;
}

const SERIAL_PATTERN = /^[A-Za-z0-9_.-]{1,20}$/;
/** SCSI serials carry GCE device names (up to 63 characters). */
const SCSI_SERIAL_PATTERN = /^[A-Za-z0-9_.-]{1,63}$/;

export function qemuArgs(input: QemuArgsInput): string[] {
  checkInput(input);
  const args = [
    '-name', optionValue(input.name),
    '-machine', 'q35',
    '-accel', input.accel === 'kvm' ? 'kvm' : 'tcg,thread=multi',
    '-cpu', input.cpu ?? defaultCpu(input.accel),
    '-smp', String(input.cpus),
    '-m', String(input.memoryMiB),
    '-nodefaults', '-display', 'none',
    '-chardev', `stdio,id=console,signal=off,logfile=${optionValue(input.serialLogPath)},logappend=on`,
    '-serial', 'chardev:console',
    '-qmp', `unix:${optionValue(input.qmpSocket)},server=on,wait=off`,
    '-pidfile', input.pidFile,
    '-device', 'virtio-rng-pci',
  ];

  args.push(...drive('root', input.rootDisk, ['virtio-blk-pci', 'bootindex=0', 'serial=root']));
  if (input.dataDisks.some((d) => d.bus?.kind === 'scsi')) args.push('-device', 'virtio-scsi-pci,id=scsi0');
  input.dataDisks.forEach((disk, i) => args.push(...drive(`data${i}`, disk, dataDevice(disk))));
  if (input.seedIso) args.push(...drive('seed', { path: input.seedIso, format: 'raw' }, undefined, true));

  const forwards = [`hostfwd=tcp:${input.sshHostAddress}:${input.sshHostPort}-:22`];
  for (const f of input.guestForwards) {
    // One relay process per connection (a chardev would carry a single connection and must already
    // be listening when QEMU starts). Stderr is silenced because slirp hands it the guest's socket.
    forwards.push(`guestfwd=tcp:${f.guestAddress}:${f.guestPort}-cmd:socat -lf /dev/null - TCP:${f.hostAddress}:${f.hostPort}`);
  }
  // romfile= skips the iPXE option ROM: nothing boots from the network, and it is slow under TCG.
  const restrict = input.network === 'open' ? [] : ['restrict=on'];
  args.push('-netdev', ['user', 'id=net0', ...restrict, ...forwards].join(','), '-device', 'virtio-net-pci,netdev=net0,romfile=');
  return args;
}

/** "max" under TCG emulates x86-64-v2+ features that container images may require. */
export function defaultCpu(accel: Accel): string {
  return accel === 'kvm' ? 'host' : 'max';
}

/** The device model and its options (after drive=) for a data disk. */
function dataDevice(disk: DataDiskSpec): [string, ...string[]] {
  const bus = disk.bus ?? { kind: 'virtio' };
  switch (bus.kind) {
    case 'virtio':
      return ['virtio-blk-pci', `serial=${disk.serial}`];
    case 'nvme':
      return ['nvme', `serial=${disk.serial}`];
    case 'scsi':
      return [
        'scsi-hd',
        'bus=scsi0.0',
        ...(bus.lun !== undefined ? ['channel=0', 'scsi-id=0', `lun=${bus.lun}`] : []),
        ...(bus.vendor ? [`vendor=${optionValue(bus.vendor)}`] : []),
        ...(bus.product ? [`product=${optionValue(bus.product)}`] : []),
        `serial=${disk.serial}`,
        `device_id=${disk.serial}`,
      ];
  }
}

function drive(id: string, disk: DiskSpec, device: [string, ...string[]] = ['virtio-blk-pci'], readonly = false): string[] {
  const driveOptions = [`file=${optionValue(disk.path)}`, 'if=none', `id=${id}`, `format=${disk.format}`];
  driveOptions.push(readonly ? 'readonly=on' : 'discard=unmap,detect-zeroes=unmap');
  const [model, ...options] = device;
  return ['-drive', driveOptions.join(','), '-device', [model, `drive=${id}`, ...options].join(',')];
}

/** QEMU option values escape a comma by doubling it. */
function optionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

export function isLoopbackV4(address: string): boolean {
  const parts = address.split('.');
  return parts.length === 4 && parts[0] === '127' && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

function checkInput(input: QemuArgsInput): void {
  const issues: { field: string; message: string }[] = [];
  if (!isLoopbackV4(input.sshHostAddress)) issues.push({ field: 'sshForward.hostAddress', message: `${input.sshHostAddress} is not an IPv4 loopback address` });
  if (!isPort(input.sshHostPort, true)) issues.push({ field: 'sshForward.hostPort', message: `${input.sshHostPort} is not a port` });
  input.guestForwards.forEach((f, i) => {
    if (!isLoopbackV4(f.hostAddress)) issues.push({ field: `guestForwards.${i}.hostAddress`, message: `${f.hostAddress} is not an IPv4 loopback address` });
    if (!isPort(f.hostPort, false) || !isPort(f.guestPort, false)) issues.push({ field: `guestForwards.${i}`, message: 'ports must be 1-65535' });
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(f.guestAddress)) issues.push({ field: `guestForwards.${i}.guestAddress`, message: `${f.guestAddress} is not an IPv4 address` });
  });
  input.dataDisks.forEach((d, i) => {
    const scsi = d.bus?.kind === 'scsi' ? d.bus : undefined;
    if (!(scsi ? SCSI_SERIAL_PATTERN : SERIAL_PATTERN).test(d.serial)) {
      issues.push({ field: `dataDisks.${i}.serial`, message: `"${d.serial}" must be 1-${scsi ? 63 : 20} letters, digits, "_", "-" or "."` });
    }
    if (scsi?.vendor !== undefined && !/^[\x20-\x7e]{1,8}$/.test(scsi.vendor)) issues.push({ field: `dataDisks.${i}.bus.vendor`, message: 'must be 1-8 printable ASCII characters' });
    if (scsi?.product !== undefined && !/^[\x20-\x7e]{1,16}$/.test(scsi.product)) issues.push({ field: `dataDisks.${i}.bus.product`, message: 'must be 1-16 printable ASCII characters' });
    if (scsi?.lun !== undefined && !(Number.isInteger(scsi.lun) && scsi.lun >= 0 && scsi.lun <= 255)) issues.push({ field: `dataDisks.${i}.bus.lun`, message: 'must be 0-255' });
  });
  if (!Number.isInteger(input.cpus) || input.cpus < 1) issues.push({ field: 'cpus', message: 'must be a positive integer' });
  if (!Number.isInteger(input.memoryMiB) || input.memoryMiB < 128) issues.push({ field: 'memoryMiB', message: 'must be an integer of at least 128' });
  if (issues.length > 0) throw new InputError(issues);
}

function isPort(port: number, allowZero: boolean): boolean {
  return Number.isInteger(port) && port <= 65535 && (allowZero ? port >= 0 : port >= 1);
}
