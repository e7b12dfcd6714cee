/**
 * What the cloud end-to-end tests share: the cached Debian base image standing in for every
 * cloud's public images, the stand-in artifact server the build VMs reach at 10.0.2.100:8080
 * (their only way out), a QEMU machine backend for the cloud fake, `kiln build` through the CLI
 * as a separate process, and the checks a booted instance of the image must pass.
 */
import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import type { Manifest, ManifestBuild } from '../../../src/pipeline/manifest.js';
import { done, notYet, waitFor } from '../../../src/core/wait.js';
import { SshSession } from '../../../src/ssh/index.js';
import { hostKeysFromConsole } from '../../../src/targets/aws/hostkeys.js';
import { buildBaseImage } from '../../../src/targets/local/base/build.js';
import { QemuMachines } from '../../fakes/common/qemu-machines.js';
import { startArtifacts, type ArtifactFixture } from '../../support/provision-fixture.js';

const GUEST_SERVER = { address: '10.0.2.100', port: 8080 };
const cacheDir = process.env.KILN_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'kiln');
const CONSOLE_TAIL = 60;

export interface CloudWorld {
  work: string;
  machines: QemuMachines;
  artifacts: ArtifactFixture;
  /** The last console lines of every machine, for failure messages. */
  consoleTail(): string;
  /** `kiln build images/sourcegraph.yaml --target <target> --size xs --version 5.2.0` with `env`. */
  build(target: string, env: Record<string, string>): Promise<BuildRun>;
  close(): Promise<void>;
}

export interface BuildRun {
  exitCode: number | undefined;
  manifest: Manifest;
  /** The state directory's ledger entries still open after the run. */
  ledgerEntries: unknown[];
  seconds: number;
}

export async function startCloudWorld(name: string): Promise<CloudWorld> {
  const work = await mkdtemp(path.join(os.tmpdir(), `kiln-e2e-${name}-`));
  const base = await buildBaseImage({ distro: 'debian-12', cacheDir });
  const artifacts = await startArtifacts();
  const tail: string[] = [];
  const machines = new QemuMachines({
    workDir: path.join(work, 'machines'),
    publicImage: base.path,
    guestForwards: [{ guestAddress: GUEST_SERVER.address, guestPort: GUEST_SERVER.port, hostAddress: artifacts.server.host, hostPort: artifacts.server.port }],
    onConsoleLine: (id, line) => {
      tail.push(`${id}| ${line}`);
      if (tail.length > CONSOLE_TAIL) tail.shift();
    },
  });
  return {
    work,
    machines,
    artifacts,
    consoleTail: () => tail.join('\n'),
    async build(target, env) {
      const mirrors = artifacts.mirrors(`http://${GUEST_SERVER.address}:${GUEST_SERVER.port}`);
      const manifestPath = path.join(work, 'kiln-manifest.json');
      const stateDir = path.join(work, 'state');
      const started = Date.now();
      const run = await execa(
        'node',
        [
          'bin/kiln.js', 'build', 'images/sourcegraph.yaml', '--target', target, '--size', 'xs', '--version', '5.2.0',
          '--mirror', `k3s=${mirrors.k3s}`, '--mirror', `helm=${mirrors.helm}`, '--mirror', `charts=${mirrors.charts}`,
          '--manifest', manifestPath, '--verbose',
        ],
        // The fakes stand at 127.0.0.1, and so does this builder as far as they can tell.
        { reject: false, env: { CI: 'true', KILN_STATE_DIR: stateDir, KILN_BUILDER_ADDRESS: '127.0.0.1', ...env } },
      );
      const seconds = Math.round((Date.now() - started) / 1000);
      if (run.exitCode !== 0) console.error(run.stdout.split('\n').slice(-120).join('\n'), run.stderr, `\nlast console lines:\n${tail.join('\n')}`);
      const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Manifest;
      const ledger = JSON.parse(await readFile(path.join(stateDir, 'runs', manifest.runId, 'ledger.json'), 'utf8')) as { entries: unknown[] };
      return { exitCode: run.exitCode, manifest, ledgerEntries: ledger.entries, seconds };
    },
    async close() {
      await machines.close();
      await artifacts.close();
      await rm(work, { recursive: true, force: true });
    },
  };
}

/**
 * Checks a freshly booted instance of the image as a customer would meet it: the boot script
 * deployed on first boot, the versions pinned on both volumes, the data volume mounted from the
 * cloud's data disk (`dataDevice`, a pattern for findmnt's SOURCE) and the build's identity gone.
 */
export async function checkAppliance(session: SshSession, options: { dataDevice: RegExp; user: string; publicKey: string }): Promise<void> {
  const sh = async (command: string) => (await session.run(command, { sudo: true, timeoutMs: 10 * 60_000 })).stdoutTail.trim();
  await sh('systemctl is-system-running --wait || true');
  expect(await sh('cat /etc/sourcegraph/version')).toBe('5.2.0');
  expect(await sh('cat /mnt/data/.sourcegraph-version')).toBe('5.2.0');
  const [source, label] = (await sh('findmnt -n -o SOURCE,LABEL /mnt/data')).split(/\s+/);
  expect(source).toMatch(options.dataDevice);
  expect(label).toBe('sgdata');
  expect(await sh('systemctl is-active kiln-boot')).toBe('active');
  expect(await sh('cat /var/log/kiln-boot.log')).toContain('first-boot');
  // Generalized: of the keys cloud-init authorized, only this instance's is left (not the build's).
  const keys = (await sh(`cat ~${options.user}/.ssh/authorized_keys`)).split('\n').filter((l) => l.startsWith('ssh-'));
  expect(keys.map((k) => k.split(' ').slice(0, 2).join(' '))).toEqual([options.publicKey.split(' ').slice(0, 2).join(' ')]);
  expect(await sh('cat /etc/machine-id')).toMatch(/^[0-9a-f]{32}$/);
}

/**
 * SSH to an instance the fake booted, verifying the host key that cloud-init printed on its
 * console (`readConsole`), as a customer reading the cloud's console would.
 */
export async function connectToInstance(world: CloudWorld, instance: { address: string; user: string; privateKey: string; readConsole: () => Promise<string> }): Promise<SshSession> {
  const hostKeys = await waitFor(
    async () => {
      const keys = hostKeysFromConsole(await instance.readConsole());
      return keys.length > 0 ? done(keys) : notYet('no host keys on the console yet');
    },
    { what: `host keys on the console of ${instance.address}`, timeoutMs: 20 * 60_000, initialDelayMs: 5000, maxDelayMs: 15_000 },
  ).catch((err: Error) => Promise.reject(new Error(`${err.message}\n${world.consoleTail()}`)));
  return SshSession.connect({ host: instance.address, port: 22, username: instance.user, privateKey: instance.privateKey, hostKeys, timeoutMs: 20 * 60_000 });
}

/**
 * The run succeeded and left nothing but its artifacts: the build's manifest entry, an empty
 * ledger, no disk or running machine in the backend and no QEMU guest of it (kiln-fake-*) alive.
 */
export async function expectCleanSuccess(world: CloudWorld, run: BuildRun, target: string): Promise<ManifestBuild | undefined> {
  expect(run.exitCode).toBe(0);
  const [build] = run.manifest.builds;
  expect(build).toMatchObject({ target, size: 'XS', version: '5.2.0', status: 'succeeded', k3sVersion: 'v1.29.6+k3s2', leftovers: [] });
  expect(run.ledgerEntries).toEqual([]);
  expect(world.machines.inventory()).toMatchObject({ disks: [], runningMachines: [] });
  expect((await execa('pgrep', ['-af', 'kiln-fake-'], { reject: false })).stdout.trim()).toBe('');
  return build;
}
