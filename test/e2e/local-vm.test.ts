/**
 * The local QEMU layer end to end: build (or reuse) the Debian base image, boot an overlay of it with
 * a NoCloud seed, reach SSH with a known host key, use the data disk and a guest forward, power it
 * off, export the disk, boot the export and find what was written. Minutes under TCG.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { done, notYet, waitFor } from '../../src/core/wait.js';
import { detectAccel, type AccelDecision } from '../../src/targets/local/accel.js';
import { buildBaseImage, type BaseImage } from '../../src/targets/local/base/build.js';
import { exportDisk } from '../../src/targets/local/capture.js';
import { generateKeyPair, sha256File, SshSession, type SshKeyPair } from '../../src/ssh/index.js';
import { createBlankDisk, createOverlay, launchVm, type VmHandle } from '../../src/targets/local/qemu.js';
import { createSeedIso } from '../../src/targets/local/seed.js';

const cacheDir = process.env.KILN_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'kiln');
const GiB = 2 ** 30;
const USER = 'kiln';
const HOST_ALIAS = 'kiln-e2e-vm';

let work: string;
let base: BaseImage;
let accel: AccelDecision;
let keyFile: string;
let knownHosts: string;
let seedIso: string;
let server: http.Server;
let serverPort: number;
const vms: VmHandle[] = [];
const consoleTail: string[] = [];
let keepWorkDir = false;
let userKey: SshKeyPair;
let hostKey: SshKeyPair;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'kiln-e2e-local-'));
  const started = Date.now();
  base = await buildBaseImage({
    distro: 'debian-12',
    cacheDir,
    onLog: (line) => {
      if (line.startsWith('base image')) console.log(line);
    },
  });
  console.log(`base image ${base.cached ? 'reused' : 'built'} in ${Math.round((Date.now() - started) / 1000)}s: ${base.path}`);
  accel = await detectAccel();
  console.log(`accelerator: ${accel.accel} (${accel.cpu}): ${accel.reason}`);

  [userKey, hostKey] = [generateKeyPair('kiln-e2e'), generateKeyPair('kiln-e2e-host')];
  keyFile = path.join(work, 'id_ed25519');
  await writeFile(keyFile, userKey.privateKey);
  await chmod(keyFile, 0o600);
  knownHosts = path.join(work, 'known_hosts');
  await writeFile(knownHosts, `${HOST_ALIAS} ${hostKey.publicKey}\n`);
  seedIso = path.join(work, 'seed.iso');
  await createSeedIso({ path: seedIso, instanceId: 'kiln-e2e-1', hostname: 'kiln-e2e', user: { name: USER, sshPublicKey: userKey.publicKey }, hostKey });

  server = http.createServer((_req, res) => res.end('hello-from-host'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  serverPort = (server.address() as AddressInfo).port;
});

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') keepWorkDir = true;
});

afterAll(async () => {
  await Promise.all(vms.map((vm) => vm.kill()));
  server?.close();
  if (!work) return;
  // Serial logs and disks of a failed run are the evidence; keep them.
  if (keepWorkDir) console.log(`kept ${work} for inspection`);
  else await rm(work, { recursive: true, force: true });
});

async function boot(name: string, rootDisk: string, dataDisk?: string): Promise<{ vm: VmHandle; bootSeconds: number }> {
  const started = Date.now();
  const vm = await launchVm({
    name,
    workDir: path.join(work, name),
    rootDisk,
    dataDisks: dataDisk ? [{ path: dataDisk, serial: 'kiln-data' }] : [],
    seedIso,
    cpus: 2,
    memoryMiB: 1024,
    sshForward: { hostAddress: '127.0.0.1', hostPort: 0 },
    guestForwards: [{ guestAddress: '10.0.2.100', guestPort: 8080, hostAddress: '127.0.0.1', hostPort: serverPort }],
    accel: accel.accel,
    cpu: accel.cpu,
    serialLogPath: path.join(work, `${name}.serial.log`),
    onConsoleLine: (line) => {
      consoleTail.push(`${name}: ${line}`);
      if (consoleTail.length > 40) consoleTail.shift();
    },
  });
  vms.push(vm);
  await waitFor(
    async () => {
      if (vm.hasExited()) throw new Error(`VM ${name} exited while booting:\n${consoleTail.join('\n')}`);
      const result = await ssh(vm, 'true', { reject: false, timeoutSeconds: 20 });
      return result.exitCode === 0 ? done(undefined) : notYet(result.stderr.trim() || `exit ${result.exitCode}`);
    },
    { what: `SSH on VM ${name}`, timeoutMs: 600_000, initialDelayMs: 2000, maxDelayMs: 5000 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\nlast console lines:\n${consoleTail.join('\n')}`);
  });
  const bootSeconds = Math.round((Date.now() - started) / 1000);
  // cloud-init may still be configuring (and restarting services) after sshd is up.
  const status = await ssh(vm, 'cloud-init status --wait', { reject: false, timeoutSeconds: 600 });
  expect(status.stdout).toContain('status: done');
  return { vm, bootSeconds };
}

function ssh(vm: VmHandle, command: string, options: { reject?: boolean; timeoutSeconds?: number } = {}) {
  // HostKeyAlias pins the key the seed installed, whatever port QEMU picked.
  return execa('ssh', [
    '-F', '/dev/null',
    '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${knownHosts}`,
    '-o', `HostKeyAlias=${HOST_ALIAS}`,
    '-o', `ConnectTimeout=${options.timeoutSeconds ?? 30}`,
    '-o', 'LogLevel=ERROR',
    '-i', keyFile,
    '-p', String(vm.sshAddress.port),
    `${USER}@${vm.sshAddress.host}`,
    command,
  ], { reject: options.reject ?? true, timeout: (options.timeoutSeconds ?? 60) * 1000 + 5000 });
}

describe('local QEMU VM from the Debian base image', () => {
  const marker = `kiln-${randomBytes(6).toString('hex')}`;
  let captured: string;

  it('boots an overlay to SSH, sees the data disk by serial, and can only reach its forwards', async () => {
    const overlay = path.join(work, 'root.qcow2');
    await createOverlay(base.path, overlay, 4);
    const data = path.join(work, 'data.qcow2');
    await createBlankDisk(data, 1);

    const { vm, bootSeconds } = await boot('first', overlay, data);
    console.log(`first boot to SSH: ${bootSeconds}s under ${accel.accel}`);

    const disk = await ssh(vm, 'readlink -f /dev/disk/by-id/virtio-kiln-data && lsblk -bdno SIZE "$(readlink -f /dev/disk/by-id/virtio-kiln-data)"');
    const [device, size] = disk.stdout.trim().split('\n');
    expect(device).toMatch(/^\/dev\/vd[b-z]$/);
    expect(Number(size)).toBe(GiB);

    // growpart + resizefs took the root fs to the overlay's 4 GiB.
    const rootSize = await ssh(vm, 'df -B1 --output=size / | tail -1');
    expect(Number(rootSize.stdout.trim())).toBeGreaterThan(3.5 * GiB);
    expect((await ssh(vm, 'sudo -n id -u')).stdout.trim()).toBe('0');
    expect((await ssh(vm, 'cat /etc/machine-id')).stdout.trim()).toMatch(/^[0-9a-f]{32}$/);

    expect((await ssh(vm, 'curl -fsS --max-time 20 http://10.0.2.100:8080/')).stdout).toBe('hello-from-host');
    // restrict=on: the same host server is not reachable through the gateway address.
    const blocked = await ssh(vm, `curl -fsS --max-time 10 http://10.0.2.2:${serverPort}/`, { reject: false });
    expect(blocked.exitCode).not.toBe(0);

    // kiln's own SSH session: sudo, a tree in one tar stream, a 200 MB file checked by sha256.
    const session = await SshSession.connect({ ...vm.sshAddress, username: USER, privateKey: userKey.privateKey, hostKeys: [hostKey.publicKey], timeoutMs: 120_000 });
    try {
      expect((await session.run('id -u', { sudo: true })).stdoutTail.trim()).toBe('0');
      const tree = await session.uploadTree('provision', '/var/tmp/kiln-tree', { sudo: true });
      expect(tree.bytes).toBeGreaterThan(0);
      const treeSum = (dir: string) => `cd ${dir} && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64`;
      const localTree = await execa('bash', ['-c', treeSum('provision')]);
      expect((await session.run(treeSum('/var/tmp/kiln-tree'), { sudo: true })).stdoutTail.trim()).toBe(localTree.stdout.trim());
      const big = path.join(work, 'big.bin');
      await writeFile(big, randomBytes(200 * 2 ** 20));
      const uploaded = await session.uploadFile(big, '/var/tmp/big.bin', { sudo: true });
      const remoteSum = (await session.run('sha256sum /var/tmp/big.bin', { sudo: true })).stdoutTail.trim().slice(0, 64);
      expect(remoteSum).toBe(await sha256File(big));
      console.log(`uploaded 200 MB in ${uploaded.durationMs ?? '?'} ms`);
    } finally {
      session.close();
    }

    await ssh(vm, `echo ${marker} | sudo tee /var/lib/kiln-marker >/dev/null && sync`);
    const stopped = await vm.shutdown({ timeoutMs: 180_000 });
    expect(stopped.how).toBe('powerdown');

    captured = path.join(work, 'captured.qcow2');
    const exported = await exportDisk(overlay, { qcow2: captured });
    expect(exported.qcow2?.sha256).toMatch(/^[0-9a-f]{64}$/);
    console.log(`captured qcow2: ${Math.round((exported.qcow2?.sizeBytes ?? 0) / 2 ** 20)} MiB`);
  });

  it('boots the captured image and finds the file written before capture', async () => {
    expect(captured).toBeDefined();
    const overlay = path.join(work, 'root2.qcow2');
    await createOverlay(captured, overlay);
    const { vm, bootSeconds } = await boot('second', overlay);
    console.log(`captured image boot to SSH: ${bootSeconds}s`);
    expect((await ssh(vm, 'sudo cat /var/lib/kiln-marker')).stdout.trim()).toBe(marker);
    expect((await vm.shutdown({ timeoutMs: 180_000 })).how).toBe('powerdown');
  });
});
