/**
 * The local build VM is a QEMU child of kiln, yet `--on-error abort` must keep it as it keeps a
 * cloud instance: kiln exits by itself (nothing of QEMU's may hold it), prints how to get in and how
 * to clean up, and the QEMU process lives on. `--resume` then finishes the build on that same VM, or
 * `kiln cleanup --run` ends it and leaves nothing. A VM that was not kept ends with kiln, even when
 * kiln leaves through process.exit (a second Ctrl-C).
 *
 * Each kiln is a process of its own (kept-vm-child.ts), as the test must watch it end. The guest
 * is a stand-in (test/support/local-stand-in.ts): QEMU runs for real on a blank disk, and a loopback
 * sshd answers SSH. The first build fails at connect because the sshd does not know kiln's key yet;
 * authorizing it is the fix before the resume.
 */
import { execa } from 'execa';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { done, notYet, waitFor } from '../../../src/core/wait.js';
import { Ledger } from '../../../src/pipeline/ledger.js';
import { runPaths } from '../../../src/pipeline/state-dir.js';
import { generateKeyPair } from '../../../src/ssh/index.js';
import { createBlankDisk } from '../../../src/targets/local/qemu.js';
import { startSshd, type TestSshd } from '../../support/sshd.js';
import type { StandInGuest } from '../../support/local-stand-in.js';
import { isQemuNaming, loggedQemuPids, qemuNaming } from '../leaks/local-world.js';
import type { BuildConfig } from './kept-vm-child.js';

const CHILD = fileURLToPath(new URL('./kept-vm-child.ts', import.meta.url));
/** Loading kiln through tsx and a build on a blank guest take seconds; a kiln held open by QEMU never ends. */
const CHILD_DEADLINE_MS = 120_000;
/** Two kilns one after the other, each within its deadline. */
const CASE_TIMEOUT_MS = 2 * CHILD_DEADLINE_MS + 60_000;

let dir: string;
let stateDir: string;
let sshd: TestSshd;
const key = generateKeyPair('kiln-kept-vm');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-kept-vm-'));
  stateDir = join(dir, 'state');
  await createBlankDisk(join(dir, 'base.qcow2'), 1);
  sshd = await startSshd();
});

afterEach(async () => {
  // A failed case must not leave a VM running on the machine.
  for (const pid of await qemuNaming(dir)) process.kill(pid, 'SIGKILL');
  sshd.authorize([]);
});

afterAll(async () => {
  await sshd?.dispose();
  await rm(dir, { recursive: true, force: true });
});

function child(args: string[]) {
  return execa(process.execPath, ['--import', 'tsx', CHILD, ...args], {
    reject: false,
    timeout: CHILD_DEADLINE_MS,
    env: { KILN_STATE_DIR: stateDir, CI: 'true' },
  });
}

async function build(runId: string, options: { onError: BuildConfig['onError']; resume: boolean }) {
  const guest: StandInGuest = {
    baseImage: join(dir, 'base.qcow2'),
    outputDir: join(dir, runId, 'out'),
    ssh: { host: sshd.host, port: sshd.port, user: sshd.user, privateKey: key.privateKey, hostKey: sshd.hostPublicKey },
  };
  await mkdir(guest.outputDir, { recursive: true });
  const config: BuildConfig = { runId, guest, ...options, manifest: join(dir, runId, 'manifest.json') };
  const result = await child(['build', JSON.stringify(config)]);
  expect(result.timedOut, `kiln did not end within ${CHILD_DEADLINE_MS} ms:\n${result.stdout}\n${result.stderr}`).toBe(false);
  return { ...result, outputs: await readdir(guest.outputDir) };
}

/** The pid of the run's VM, as the ledger records it. */
async function recordedVmPid(runId: string): Promise<number> {
  const ledger = await Ledger.open(runPaths(runId, stateDir).ledger, runId);
  const vm = ledger.entries().find((e) => e.kind === 'vm');
  return Number(vm?.id);
}

async function ledgerEntries(runId: string) {
  return (await Ledger.open(runPaths(runId, stateDir).ledger, runId)).entries();
}

function vmGone(pid: number): Promise<boolean> {
  return waitFor(async () => ((await isQemuNaming(pid, dir)) ? notYet('running') : done(true)), { what: `QEMU ${pid} to end`, timeoutMs: 30_000, initialDelayMs: 50 });
}

/** Builds with on-error abort; the build fails at connect. Returns the kept VM's pid. */
async function abortedBuild(runId: string): Promise<number> {
  const aborted = await build(runId, { onError: 'abort', resume: false });
  expect(aborted.exitCode, aborted.stderr).toBe(1);
  expect(aborted.stdout).toMatch(/refused the key/);
  expect(aborted.stdout).toMatch(/its VM is kept; get in with: ssh .*-p \d+/);
  expect(aborted.stdout).toContain(`kiln cleanup --run ${runId}`);
  const pid = await recordedVmPid(runId);
  expect(await isQemuNaming(pid, dir), 'the kept QEMU is alive after kiln has exited').toBe(true);
  return pid;
}

describe('a local build VM kept by --on-error abort', () => {
  it('outlives kiln, and --resume finishes the build on it without starting another', async () => {
    const pid = await abortedBuild('keptresume');

    sshd.authorize([key.publicKey]);
    const resumed = await build('keptresume', { onError: 'cleanup', resume: true });
    expect(resumed.exitCode, `${resumed.stdout}\n${resumed.stderr}`).toBe(0);
    expect(await loggedQemuPids(stateDir, 'keptresume')).toEqual([pid]);
    const log = await readFile(runPaths('keptresume', stateDir).build('keptresume-local-xs').log, 'utf8');
    // The blank guest ignores the power button; QEMU is then told to quit.
    expect(log).toMatch(/local: VM \S+ stopped \(quit\)/);
    expect(await vmGone(pid)).toBe(true);
    expect(resumed.outputs.length).toBeGreaterThan(0);
    expect(await ledgerEntries('keptresume')).toEqual([]);
  }, CASE_TIMEOUT_MS);

  it('is ended by kiln cleanup --run, which leaves no file of the run', async () => {
    const pid = await abortedBuild('keptclean');
    const cleanup = await execa('node', ['bin/kiln.js', 'cleanup', '--run', 'keptclean'], { reject: false, env: { KILN_STATE_DIR: stateDir, CI: 'true' } });
    expect(cleanup.exitCode, `${cleanup.stdout}\n${cleanup.stderr}`).toBe(0);
    expect(await vmGone(pid)).toBe(true);
    expect(await ledgerEntries('keptclean')).toEqual([]);
    const work = runPaths('keptclean', stateDir).build('keptclean-local-xs').work;
    expect(await readdir(work).catch(() => [])).toEqual([]);
  }, CASE_TIMEOUT_MS);
});

describe('a local VM that is not kept', () => {
  it('ends when kiln exits through process.exit; a kept one does not', async () => {
    const launch = async (name: string, then: 'exit' | 'keep') => {
      const rootDisk = join(dir, `${name}.qcow2`);
      await createBlankDisk(rootDisk, 1);
      const options = { name, workDir: join(dir, name), rootDisk, cpus: 1, memoryMiB: 128, sshForward: { hostAddress: '127.0.0.1', hostPort: 0 }, accel: 'tcg', serialLogPath: join(dir, `${name}.log`) };
      return child(['launch', JSON.stringify(options), then]);
    };
    const [exited, kept] = await Promise.all([launch('kiln-exits', 'exit'), launch('kiln-keeps', 'keep')]);
    const pidOf = (stdout: string) => Number(/^pid (\d+)$/m.exec(stdout)?.[1]);
    expect([exited.exitCode, exited.timedOut, kept.exitCode, kept.timedOut], `${exited.stderr}\n${kept.stderr}`).toEqual([0, false, 0, false]);
    expect(await vmGone(pidOf(exited.stdout))).toBe(true);
    expect(await isQemuNaming(pidOf(kept.stdout), dir)).toBe(true);
  }, CASE_TIMEOUT_MS);
});
