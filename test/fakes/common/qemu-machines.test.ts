/**
 * The QEMU machine backend's disks and snapshots, with qemu-img and qemu-io standing in for a guest
 * writing to its disk (booting is the e2e tests' job): disks from public and own snapshots,
 * standalone snapshot copies, linked snapshots of never-booted disks, deferred deletion of a
 * snapshot that still backs a disk; and how data disks are dressed per cloud.
 */
import { execa } from 'execa';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { imageInfo } from '../../../src/targets/local/image-info.js';
import { guestDisk, vendorDataFor } from './guest-devices.js';
import { QemuMachines } from './qemu-machines.js';

const GiB = 2 ** 30;
let dir: string;
let publicImage: string;
let machines: QemuMachines;

/** Writes `pattern` at `offset` as a guest would. */
const write = (file: string, pattern: number, offset: string) => execa('qemu-io', ['-c', `write -P ${pattern} ${offset} 64k`, file]);
/** True when the 64 KiB at `offset` hold `pattern`. */
const holds = async (file: string, pattern: number, offset: string) => (await execa('qemu-io', ['-c', `read -P ${pattern} ${offset} 64k`, file], { reject: false })).exitCode === 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-qemu-machines-'));
  publicImage = path.join(dir, 'public.qcow2');
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', publicImage, '1G']);
  await write(publicImage, 0xaa, '0');
  machines = new QemuMachines({ workDir: path.join(dir, 'backend'), publicImage });
});

afterAll(async () => {
  await machines?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('QemuMachines disks and snapshots', () => {
  it('makes disks from public images and blank ones, and snapshots them as standalone copies', async () => {
    await machines.createDisk('vol-root', 2, 'snap-public-base');
    await machines.createDisk('vol-data', 3);
    const root = path.join(dir, 'backend', 'disks', 'vol-root.qcow2');
    expect(await imageInfo(root)).toMatchObject({ virtualSizeBytes: 2 * GiB, backingFile: publicImage });
    expect((await imageInfo(path.join(dir, 'backend', 'disks', 'vol-data.qcow2'))).virtualSizeBytes).toBe(3 * GiB);
    expect(await holds(root, 0xaa, '0')).toBe(true);

    await write(root, 0xbb, '1M');
    await machines.snapshotDisk('vol-root', 'snap-1');
    const snapshot = path.join(dir, 'backend', 'snapshots', 'snap-1.qcow2');
    const info = await imageInfo(snapshot);
    expect(info.backingFile).toBeUndefined();
    expect(info.virtualSizeBytes).toBe(2 * GiB);
    expect(await holds(snapshot, 0xaa, '0')).toBe(true);
    expect(await holds(snapshot, 0xbb, '1M')).toBe(true);
    // Later writes to the disk do not reach the snapshot.
    await write(root, 0xcc, '1M');
    expect(await holds(snapshot, 0xbb, '1M')).toBe(true);
  });

  it('links the snapshot of a never-booted disk to the one it came from (region copies)', async () => {
    await machines.createDisk('scratch', 2, 'snap-1');
    await machines.snapshotDisk('scratch', 'snap-copy');
    await machines.deleteDisk('scratch');
    const [original, copy] = await Promise.all(['snap-1', 'snap-copy'].map((s) => stat(path.join(dir, 'backend', 'snapshots', `${s}.qcow2`))));
    expect(copy?.ino).toBe(original?.ino);
  });

  it('keeps a deleted snapshot until the last disk made from it is gone', async () => {
    await machines.createDisk('vol-from-1', 4, 'snap-1');
    const disk = path.join(dir, 'backend', 'disks', 'vol-from-1.qcow2');
    await machines.deleteSnapshot('snap-1');
    expect(machines.inventory().snapshots).not.toContain('snap-1');
    expect(await holds(disk, 0xbb, '1M')).toBe(true);
    await machines.deleteDisk('vol-from-1');
    await expect(stat(path.join(dir, 'backend', 'snapshots', 'snap-1.qcow2'))).rejects.toThrow(/ENOENT/);
    // The linked copy keeps the content.
    expect(await holds(path.join(dir, 'backend', 'snapshots', 'snap-copy.qcow2'), 0xbb, '1M')).toBe(true);
    await expect(machines.createDisk('vol-late', 2, 'snap-1')).resolves.toBeUndefined(); // an unknown id is a public image again
    expect(await holds(path.join(dir, 'backend', 'disks', 'vol-late.qcow2'), 0xbb, '1M')).toBe(false);
  });

  it('holds exactly what was not deleted', async () => {
    for (const id of ['vol-root', 'vol-data', 'vol-late']) await machines.deleteDisk(id);
    await machines.deleteSnapshot('snap-copy');
    expect(machines.inventory()).toEqual({ disks: [], snapshots: [], runningMachines: [] });
    await expect(machines.snapshotDisk('vol-root', 'snap-x')).rejects.toThrow(/no disk vol-root/);
  });
});

describe('data disks dressed per cloud', () => {
  it('gives EBS volumes an NVMe serial, GCE disks their device name, Azure disks their LUN', () => {
    expect(guestDisk({ kind: 'ebs', volumeId: 'vol-0123456789abcdef0' }, 1)).toEqual({ serial: 'vol0123456789abcdef0', bus: { kind: 'nvme' } });
    expect(guestDisk({ kind: 'gce', deviceName: 'kiln-data' }, 1)).toEqual({ serial: 'kiln-data', bus: { kind: 'scsi', vendor: 'Google', product: 'PersistentDisk' } });
    expect(guestDisk({ kind: 'azure', lun: 3 }, 1)).toEqual({ serial: 'lun3', bus: { kind: 'scsi', vendor: 'Msft', product: 'Virtual Disk', lun: 3 } });
    expect(guestDisk(undefined, 2)).toEqual({ serial: 'disk-2', bus: { kind: 'virtio' } });
  });

  it('adds the Azure LUN udev rule through vendor-data, and nothing for the other clouds', () => {
    expect(vendorDataFor([{ kind: 'ebs', volumeId: 'vol-1' }, undefined])).toBeUndefined();
    const text = vendorDataFor([{ kind: 'azure', lun: 0 }]) ?? '';
    expect(text.startsWith('#cloud-config\n')).toBe(true);
    const config = parse(text) as { write_files: { path: string; content: string }[]; runcmd: string[][] };
    expect(config.write_files[0]?.path).toBe('/etc/udev/rules.d/66-azure-storage.rules');
    expect(config.write_files[0]?.content).toContain('SYMLINK+="disk/azure/scsi1/lun%c"');
    expect(config.runcmd.map((c) => c.join(' '))).toContain('udevadm trigger --subsystem-match=block --action=change');
  });
});
