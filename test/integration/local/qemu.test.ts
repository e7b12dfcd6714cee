import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError, KilnError } from '../../../src/core/errors.js';
import { qemuArgs, type QemuArgsInput } from '../../../src/targets/local/qemu-args.js';
import { createBlankDisk, launchVm, type LaunchVmOptions, type VmHandle } from '../../../src/targets/local/qemu.js';

let dir: string;
const vms: VmHandle[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-qemu-test-'));
  await createBlankDisk(path.join(dir, 'root.qcow2'), 1);
  await createBlankDisk(path.join(dir, 'data.qcow2'), 1);
});

afterAll(async () => {
  await Promise.all(vms.map((vm) => vm.kill()));
  await rm(dir, { recursive: true, force: true });
});

const argsInput = (over: Partial<QemuArgsInput> = {}): QemuArgsInput => ({
  name: 'kiln-test',
  accel: 'tcg',
  cpus: 1,
  memoryMiB: 256,
  rootDisk: { path: '/d/root.qcow2', format: 'qcow2' },
  dataDisks: [{ path: '/d/data,1.qcow2', format: 'qcow2', serial: 'kiln-data' }],
  seedIso: '/d/seed.iso',
  sshHostAddress: '127.0.0.5',
  sshHostPort: 2222,
  guestForwards: [{ guestAddress: '10.0.2.100', guestPort: 8080, hostAddress: '127.0.0.1', hostPort: 9000 }],
  qmpSocket: '/d/qmp.sock',
  serialLogPath: '/d/serial.log',
  pidFile: '/d/qemu.pid',
  ...over,
});

// A VM with a blank disk: no OS, but QEMU, QMP, forwards and stopping all work the same.
const launchOptions = (name: string, over: Partial<LaunchVmOptions> = {}): LaunchVmOptions => ({
  name,
  workDir: path.join(dir, name),
  rootDisk: path.join(dir, 'root.qcow2'),
  dataDisks: [{ path: path.join(dir, 'data.qcow2'), serial: 'kiln-data' }],
  cpus: 1,
  memoryMiB: 128,
  sshForward: { hostAddress: '127.0.0.1', hostPort: 0 },
  accel: 'tcg',
  serialLogPath: path.join(dir, `${name}.serial.log`),
  ...over,
});

describe('qemuArgs', () => {
  it('uses restricted user networking with loopback-only forwards and serial-tagged virtio disks', () => {
    const args = qemuArgs(argsInput());
    const netdev = args[args.indexOf('-netdev') + 1] ?? '';
    expect(netdev.split(',').slice(0, 3)).toEqual(['user', 'id=net0', 'restrict=on']);
    expect(netdev).toContain('hostfwd=tcp:127.0.0.5:2222-:22');
    expect(netdev).toContain('guestfwd=tcp:10.0.2.100:8080-cmd:socat -lf /dev/null - TCP:127.0.0.1:9000');
    expect(args).toContain('virtio-blk-pci,drive=data0,serial=kiln-data');
    expect(args).toContain('file=/d/data,,1.qcow2,if=none,id=data0,format=qcow2,discard=unmap,detect-zeroes=unmap');
    expect(args).toContain('virtio-blk-pci,drive=root,bootindex=0,serial=root');
    expect(args.join(' ')).toContain('file=/d/seed.iso,if=none,id=seed,format=raw,readonly=on');
    expect(args.slice(args.indexOf('-cpu'), args.indexOf('-cpu') + 2)).toEqual(['-cpu', 'max']);
    expect(args).not.toContain('-enable-kvm');
  });

  it('attaches data disks as NVMe or on a virtio-scsi controller with the identity asked for', () => {
    const args = qemuArgs(
      argsInput({
        dataDisks: [
          { path: '/d/a.qcow2', format: 'qcow2', serial: 'vol0123456789abcdef0', bus: { kind: 'nvme' } },
          { path: '/d/b.qcow2', format: 'qcow2', serial: 'a-gce-device-name-longer-than-twenty', bus: { kind: 'scsi', vendor: 'Google', product: 'PersistentDisk' } },
          { path: '/d/c.qcow2', format: 'qcow2', serial: 'lun3', bus: { kind: 'scsi', vendor: 'Msft', product: 'Virtual Disk', lun: 3 } },
        ],
      }),
    );
    expect(args).toContain('nvme,drive=data0,serial=vol0123456789abcdef0');
    expect(args.filter((a) => a.startsWith('virtio-scsi-pci'))).toEqual(['virtio-scsi-pci,id=scsi0']);
    expect(args).toContain('scsi-hd,drive=data1,bus=scsi0.0,vendor=Google,product=PersistentDisk,serial=a-gce-device-name-longer-than-twenty,device_id=a-gce-device-name-longer-than-twenty');
    expect(args).toContain('scsi-hd,drive=data2,bus=scsi0.0,channel=0,scsi-id=0,lun=3,vendor=Msft,product=Virtual Disk,serial=lun3,device_id=lun3');
    expect(qemuArgs(argsInput()).some((a) => a.startsWith('virtio-scsi-pci'))).toBe(false);
    const scsi = (bus: object) => argsInput({ dataDisks: [{ path: '/d', format: 'qcow2', serial: 's', bus: { kind: 'scsi', ...bus } }] });
    expect(() => qemuArgs(scsi({ vendor: 'TooLongVendor' }))).toThrow(/bus.vendor/);
    expect(() => qemuArgs(scsi({ lun: 256 }))).toThrow(/bus.lun/);
    expect(() => qemuArgs(argsInput({ dataDisks: [{ path: '/d', format: 'qcow2', serial: 'a'.repeat(21), bus: { kind: 'nvme' } }] }))).toThrow(InputError);
  });

  it('refuses non-loopback forwards, bad serials and bad sizes', () => {
    expect(() => qemuArgs(argsInput({ sshHostAddress: '0.0.0.0' }))).toThrow(InputError);
    expect(() => qemuArgs(argsInput({ guestForwards: [{ guestAddress: '10.0.2.100', guestPort: 80, hostAddress: '192.168.1.1', hostPort: 80 }] }))).toThrow(InputError);
    expect(() => qemuArgs(argsInput({ dataDisks: [{ path: '/d', format: 'qcow2', serial: 'a'.repeat(21) }] }))).toThrow(InputError);
    expect(() => qemuArgs(argsInput({ memoryMiB: 64 }))).toThrow(InputError);
  });
});

describe('launchVm', () => {
  it('starts QEMU, reports the SSH port it picked on loopback, and stops it with quit when the power button is ignored', async () => {
    const vm = await launchVm(launchOptions('vm1'));
    vms.push(vm);
    expect(vm.pid).toBeGreaterThan(0);
    expect(vm.sshAddress.host).toBe('127.0.0.1');
    expect(vm.sshAddress.port).toBeGreaterThan(0);
    expect(Number((await readFile(vm.pidFile, 'utf8')).trim())).toBe(vm.pid);
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(vm.sshAddress.port, '127.0.0.1', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', reject);
    });
    const cmdline = (await readFile(`/proc/${vm.pid}/cmdline`, 'utf8')).split('\0');
    expect(cmdline.find((a) => a.startsWith('user,'))).toContain('restrict=on');

    // No OS, so nothing answers the ACPI power button: shutdown must fall back to quit.
    const result = await vm.shutdown({ timeoutMs: 1500 });
    expect(result.how).toBe('quit');
    expect(result.exit.exitCode).toBe(0);
    expect(vm.hasExited()).toBe(true);
    expect(await vm.shutdown({ timeoutMs: 1000 })).toMatchObject({ how: 'already-exited' });
  });

  it('kills a VM, reports the signal and removes the pid file and socket QEMU could not', async () => {
    const vm = await launchVm(launchOptions('vm2'));
    vms.push(vm);
    expect(await readdir(path.join(dir, 'vm2'))).toEqual(expect.arrayContaining(['qemu.pid', 'qmp.sock']));
    expect((await vm.kill()).signal).toBe('SIGKILL');
    expect((await vm.exited).signal).toBe('SIGKILL');
    expect(await readdir(path.join(dir, 'vm2'))).toEqual([]);
  });

  it('refuses guest forwards when socat is missing, before starting anything', async () => {
    const savedPath = process.env.PATH;
    process.env.PATH = path.join(dir, 'empty-bin');
    try {
      const forwards = [{ guestAddress: '10.0.2.100', guestPort: 80, hostAddress: '127.0.0.1', hostPort: 8080 }];
      await expect(launchVm(launchOptions('vm4', { guestForwards: forwards }))).rejects.toThrow(/socat/);
    } finally {
      process.env.PATH = savedPath;
    }
  });

  it('fails with QEMU\'s own message when the SSH port is taken', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const launching = launchVm(launchOptions('vm3', { sshForward: { hostAddress: '127.0.0.1', hostPort: port } }));
      await expect(launching).rejects.toThrow(KilnError);
      await expect(launching).rejects.toThrow(/host forwarding/i);
    } finally {
      server.close();
    }
  });
});
