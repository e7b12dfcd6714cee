/**
 * How the QEMU machine backend makes a cloud's data disk look like one to the guest, so that
 * provision/data-volume.sh finds it the way it does on that cloud:
 *
 *   ebs    NVMe controller, serial = volume id without its dash. Amazon's udev rules (ec2-utils)
 *          are not in the Debian image, so the script finds it through /sys/block/nvme*n1/device/serial,
 *          its fallback for images without them. The model is QEMU's, not "Amazon Elastic Block Store".
 *   gce    virtio-scsi disk, vendor "Google", product "PersistentDisk", serial and device id = the
 *          device name: udev's own scsi_id names it /dev/disk/by-id/scsi-0Google_PersistentDisk_<name>,
 *          exactly as on GCE. The google-<name> link of Google's guest udev rules is not made.
 *   azure  virtio-scsi disk "Msft Virtual Disk" at the LUN, plus, through cloud-init vendor-data,
 *          the udev rule Azure's images carry (walinuxagent's 66-azure-storage.rules) that names it
 *          /dev/disk/azure/scsi1/lun<N>. Azure tells its data controller apart by a VMBus id QEMU
 *          cannot present, so the rule here takes every "Msft Virtual Disk" for a data disk.
 */
import { stringify } from 'yaml';
import type { DiskBus } from '../../../src/targets/local/qemu.js';
import type { DiskDevice } from './machines.js';

export interface GuestDisk {
  serial: string;
  bus: DiskBus;
}

export function guestDisk(device: DiskDevice | undefined, position: number): GuestDisk {
  switch (device?.kind) {
    case undefined:
      return { serial: `disk-${position}`, bus: { kind: 'virtio' } };
    case 'ebs':
      return { serial: device.volumeId.replace('-', ''), bus: { kind: 'nvme' } };
    case 'gce':
      return { serial: device.deviceName, bus: { kind: 'scsi', vendor: 'Google', product: 'PersistentDisk' } };
    case 'azure':
      return { serial: `lun${device.lun}`, bus: { kind: 'scsi', vendor: 'Msft', product: 'Virtual Disk', lun: device.lun } };
  }
}

const AZURE_LUN_RULE = String.raw`ACTION=="add|change", SUBSYSTEM=="block", ENV{DEVTYPE}=="disk", ATTRS{vendor}=="Msft*", ATTRS{model}=="Virtual Disk*", PROGRAM="/bin/sh -c 'readlink /sys/class/block/%k/device | cut -d: -f4'", SYMLINK+="disk/azure/scsi1/lun%c"`;

/** cloud-init vendor-data a machine with these devices needs, if any. */
export function vendorDataFor(devices: (DiskDevice | undefined)[]): string | undefined {
  if (!devices.some((d) => d?.kind === 'azure')) return undefined;
  const rule = { path: '/etc/udev/rules.d/66-azure-storage.rules', permissions: '0644', content: `# Azure data disks by LUN, as walinuxagent names them (kiln VM fake)\n${AZURE_LUN_RULE}\n` };
  const runcmd = [
    ['udevadm', 'control', '--reload-rules'],
    ['udevadm', 'trigger', '--subsystem-match=block', '--action=change'],
  ];
  return `#cloud-config\n${stringify({ write_files: [rule], runcmd }, { lineWidth: 0 })}`;
}
