/**
 * The local target as a leak world: kiln's QEMU runs for real on this machine (a blank base image,
 * so its guest never boots) and a loopback sshd stands in for the guest's SSH. What a run may leave
 * is a QEMU process, files under the run's work dir (overlays, seed, key, QEMU's pid file and
 * socket) and image files in the output dir; `left()` reports the first and last of those for every
 * run of this world, the test's strayFiles the middle one.
 */
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPaths } from '../../../src/pipeline/state-dir.js';
import { generateKeyPair } from '../../../src/ssh/index.js';
import { createDriver } from '../../../src/targets/drivers.js';
import { createBlankDisk } from '../../../src/targets/local/qemu.js';
import { startSshd } from '../../support/sshd.js';
import type { LeakWorld } from './worlds.js';

/** The pids of the running QEMU processes whose command line contains `text` (a run id, a directory). */
export async function qemuNaming(text: string): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name)).map(Number);
  const found = await Promise.all(pids.map(async (pid) => ((await isQemuNaming(pid, text)) ? pid : undefined)));
  return found.filter((pid): pid is number => pid !== undefined);
}

/** True when `pid` is a running QEMU whose command line contains `text` (a zombie's is empty). */
export async function isQemuNaming(pid: number, text: string): Promise<boolean> {
  try {
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return args.some((a) => a.includes('qemu-system')) && args.some((a) => a.includes(text));
  } catch {
    return false;
  }
}

/** The QEMU pids the run's build logs say kiln started (`local: VM <name> (pid <n>) started`). */
export async function loggedQemuPids(stateDir: string, runId: string): Promise<number[]> {
  const builds = join(runPaths(runId, stateDir).root, 'builds');
  const ids = await readdir(builds).catch(() => []);
  const logs = await Promise.all(ids.map((id) => readFile(runPaths(runId, stateDir).build(id).log, 'utf8').catch(() => '')));
  return logs.flatMap((log) => [...log.matchAll(/local: VM \S+ \(pid (\d+)\) started/g)].map((m) => Number(m[1])));
}

export async function localWorld(): Promise<LeakWorld> {
  const sshd = await startSshd();
  const dir = await mkdtemp(join(tmpdir(), 'kiln-local-leaks-'));
  const stateDir = join(dir, 'state');
  const outputDir = join(dir, 'out');
  const baseImage = join(dir, 'base.qcow2');
  await mkdir(outputDir);
  await createBlankDisk(baseImage, 1);
  // The guest's login, played by the sshd: one key for every build of this world.
  const key = generateKeyPair('kiln-local-leaks');
  sshd.authorize([key.publicKey]);
  return {
    target: 'local',
    stateDir,
    config: () => ({ sshHost: sshd.host, sshPort: sshd.port, sshUser: sshd.user, stateDir, local: { baseImage, outputDir, privateKey: key.privateKey, hostKey: sshd.hostPublicKey } }),
    // The local target needs nothing to reach its resources: the ledger has the paths and pids.
    fresh: () => createDriver('local'),
    left: async () => ({ qemu: await qemuNaming(dir), outputs: await readdir(outputDir, { recursive: true }) }),
    intercept: () => {
      throw new Error('the local target has no fake to stop kiln in a create call');
    },
    close: async () => {
      // A failed case must not leave a VM running on the machine.
      for (const pid of await qemuNaming(dir)) process.kill(pid, 'SIGKILL');
      await sshd.dispose();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
