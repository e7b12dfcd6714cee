/**
 * The main job, end to end on this machine: `kiln build images/sourcegraph.yaml --target local
 * --size xs` through the real CLI (a separate process), provisioning for real on a QEMU VM from the
 * stand-in artifact server; then the captured images boot like a customer's fresh instance and are
 * checked live. The guest network is restricted to the one forwarded artifact server.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/pipeline/manifest.js';
import { generateKeyPair, SshSession } from '../../src/ssh/index.js';
import { detectAccel } from '../../src/targets/local/accel.js';
import { createOverlay, launchVm, type VmHandle } from '../../src/targets/local/qemu.js';
import { createSeedIso } from '../../src/targets/local/seed.js';
import { startArtifacts, type ArtifactFixture } from '../support/provision-fixture.js';

const isRoot = process.getuid?.() === 0;
const GUEST_SERVER = '10.0.2.100:8080';

describe.skipIf(!isRoot)('kiln build on the local target, then booting the image', () => {
  let work: string;
  let artifacts: ArtifactFixture;
  let manifest: Manifest;
  let build: { exitCode?: number; stdout: string; stderr: string };
  let vm: VmHandle | undefined;
  let session: SshSession | undefined;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'kiln-e2e-build-'));
    artifacts = await startArtifacts();
    const mirrors = artifacts.mirrors(`http://${GUEST_SERVER}`);
    build = await execa(
      'node',
      [
        'bin/kiln.js', 'build', 'images/sourcegraph.yaml', '--target', 'local', '--size', 'xs', '--version', '5.2.0',
        '--local-network', 'restricted', '--local-forward', `${GUEST_SERVER}=127.0.0.1:${artifacts.server.port}`,
        '--mirror', `k3s=${mirrors.k3s}`, '--mirror', `helm=${mirrors.helm}`, '--mirror', `charts=${mirrors.charts}`,
        '--output-dir', path.join(work, 'out'), '--manifest', path.join(work, 'kiln-manifest.json'), '--verbose',
      ],
      { reject: false, env: { CI: 'true', KILN_STATE_DIR: path.join(work, 'state') }, all: false },
    );
    if (build.exitCode !== 0) console.error(build.stdout.split('\n').slice(-80).join('\n'), build.stderr);
    manifest = JSON.parse(await readFile(path.join(work, 'kiln-manifest.json'), 'utf8')) as Manifest;
  });

  afterAll(async () => {
    session?.close();
    await vm?.kill();
    await artifacts?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('builds, writes the manifest and leaves nothing behind', async () => {
    expect(build.exitCode).toBe(0);
    const [entry] = manifest.builds;
    expect(entry).toMatchObject({ target: 'local', size: 'XS', version: '5.2.0', status: 'succeeded', k3sVersion: 'v1.29.6+k3s2', leftovers: [] });
    expect(entry?.artifacts.map((a) => `${a.disk}:${a.format}`).sort()).toEqual(['data:qcow2', 'data:vmdk', 'root:qcow2', 'root:vmdk']);
    for (const artifact of entry?.artifacts ?? []) expect(existsSync(artifact.path ?? '')).toBe(true);
    const ledger = JSON.parse(await readFile(path.join(work, 'state', 'runs', manifest.runId, 'ledger.json'), 'utf8')) as { entries: unknown[] };
    expect(ledger.entries).toEqual([]);
    const leftover = await execa('pgrep', ['-f', `kiln-${manifest.runId}`], { reject: false });
    expect(leftover.stdout).toBe('');
  });

  it('boots the captured images as a fresh instance that deploys on first boot', async () => {
    const files = manifest.builds[0]?.artifacts.filter((a) => a.format === 'qcow2') ?? [];
    const root = path.join(work, 'boot-root.qcow2');
    const data = path.join(work, 'boot-data.qcow2');
    await createOverlay(files.find((f) => f.disk === 'root')?.path ?? '', root);
    await createOverlay(files.find((f) => f.disk === 'data')?.path ?? '', data);
    const client = generateKeyPair('customer');
    const hostKey = generateKeyPair('customer-host');
    const seed = path.join(work, 'seed.iso');
    await createSeedIso({ path: seed, instanceId: 'customer-1', hostname: 'appliance', user: { name: 'customer', sshPublicKey: client.publicKey }, hostKey });
    const accel = await detectAccel();
    vm = await launchVm({
      name: 'kiln-e2e-customer', workDir: path.join(work, 'vm'), rootDisk: root, dataDisks: [{ path: data, serial: 'kiln-data' }], seedIso: seed,
      cpus: 2, memoryMiB: 2048, sshForward: { hostAddress: '127.0.0.1', hostPort: 0 }, accel: accel.accel, cpu: accel.cpu, serialLogPath: path.join(work, 'console.log'),
    });
    session = await SshSession.connect({ ...vm.sshAddress, username: 'customer', privateKey: client.privateKey, hostKeys: [hostKey.publicKey], timeoutMs: 15 * 60_000 });
    const sh = async (command: string) => (await session!.run(command, { sudo: true, timeoutMs: 10 * 60_000 })).stdoutTail.trim();
    await sh('systemctl is-system-running --wait || true');

    expect(await sh('cat /etc/sourcegraph/version')).toBe('5.2.0');
    expect(await sh('cat /mnt/data/.sourcegraph-version')).toBe('5.2.0');
    expect(await sh('findmnt -n -o SOURCE,LABEL /mnt/data')).toMatch(/^\/dev\/vdb\s+sgdata$/);
    expect(await sh('sysctl -n fs.inotify.max_user_watches')).toBe('1048576');
    expect(await sh('nft list ruleset')).toContain('10.10.0.0/16');
    expect(await sh('cat /var/log/kiln-boot.log')).toContain('first-boot');
    const installs = (await sh('cat /var/log/kiln-standins.jsonl')).split('\n').map((l) => JSON.parse(l) as { tool: string; event: string; release?: string }).filter((e) => e.tool === 'helm' && e.event === 'upgrade');
    expect(installs.map((e) => e.release)).toEqual(['sourcegraph', 'sourcegraph-executor-k8s']);
    // Generalized: the build's user and keys are gone; this instance got its own identity.
    expect(await sh('id sourcegraph >/dev/null 2>&1 && test -s /home/sourcegraph/.ssh/authorized_keys && echo kept || echo gone')).toBe('gone');
    expect(await sh('cat /etc/machine-id')).toMatch(/^[0-9a-f]{32}$/);
  });
});
