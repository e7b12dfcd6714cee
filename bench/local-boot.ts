/**
 * Launch to SSH ready on the local target: how long a build VM takes from `qemu` starting to an
 * authenticated SSH session (and to cloud-init having finished), with the accelerator it used.
 * Run with `npx tsx bench/local-boot.ts [runs]` as root; builds or reuses the cached base image.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { formatDuration } from '../src/core/duration.js';
import { generateKeyPair, SshSession } from '../src/ssh/index.js';
import { detectAccel } from '../src/targets/local/accel.js';
import { buildBaseImage } from '../src/targets/local/base/build.js';
import { defaultCacheDir } from '../src/targets/local/driver.js';
import { createBlankDisk, createOverlay, launchVm } from '../src/targets/local/qemu.js';
import { createSeedIso } from '../src/targets/local/seed.js';

const runs = Number(process.argv[2] ?? 1);
const base = await buildBaseImage({ distro: 'debian-12', cacheDir: defaultCacheDir() });
const accel = await detectAccel();
console.log(`base ${base.path} (${base.cached ? 'cached' : 'built'}), ${accel.accel}: ${accel.reason}`);

for (let run = 1; run <= runs; run++) {
  const work = await mkdtemp(path.join(os.tmpdir(), 'kiln-bench-boot-'));
  const client = generateKeyPair('bench');
  const hostKey = generateKeyPair('bench-host');
  await createOverlay(base.path, path.join(work, 'root.qcow2'), 8);
  await createBlankDisk(path.join(work, 'data.qcow2'), 8);
  await createSeedIso({ path: path.join(work, 'seed.iso'), instanceId: `bench-${run}`, hostname: 'bench', user: { name: 'kiln', sshPublicKey: client.publicKey }, hostKey });
  const started = Date.now();
  const vm = await launchVm({
    name: `kiln-bench-${run}`, workDir: work, rootDisk: path.join(work, 'root.qcow2'), dataDisks: [{ path: path.join(work, 'data.qcow2'), serial: 'kiln-data' }],
    seedIso: path.join(work, 'seed.iso'), cpus: 2, memoryMiB: 2048, sshForward: { hostAddress: '127.0.0.1', hostPort: 0 },
    accel: accel.accel, cpu: accel.cpu, serialLogPath: path.join(work, 'console.log'),
  });
  try {
    const session = await SshSession.connect({ ...vm.sshAddress, username: 'kiln', privateKey: client.privateKey, hostKeys: [hostKey.publicKey], timeoutMs: 20 * 60_000 });
    const sshReady = Date.now() - started;
    await session.run('cloud-init status --wait', { sudo: true, timeoutMs: 20 * 60_000, quiet: true });
    const firstBootDone = Date.now() - started;
    session.close();
    const stopStarted = Date.now();
    const stop = await vm.shutdown({ timeoutMs: 5 * 60_000 });
    console.log(`run ${run}: launch -> SSH ready ${formatDuration(sshReady)}, -> cloud-init done ${formatDuration(firstBootDone)}, shutdown ${formatDuration(Date.now() - stopStarted)} (${stop.how}), load ${os.loadavg()[0]?.toFixed(1)}`);
  } finally {
    if (!vm.hasExited()) await vm.kill();
    await rm(work, { recursive: true, force: true });
  }
}
