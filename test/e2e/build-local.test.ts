/**
 * The main job, end to end on this machine, through the real CLI (separate processes):
 *   - `kiln build images/sourcegraph.yaml --target local --size xs` for version A (5.2.0) air-gapped:
 *     from an offline bundle (`kiln bundle`, made beforehand from the stand-in release sites), with
 *     a guest network that reaches nothing at all; and for version B (5.9.0) online from the stand-in
 *     artifact server, with `--validate` (an instance booted from B's image passes every check
 *     before anything is published);
 *   - a customer's life with those images: A's root with a fresh copy of A's data disk deploys on
 *     first boot and passes validation (`kiln validate`, network still restricted); B's root with
 *     that data disk upgrades, and the power is cut (QEMU killed) in the
 *     middle of the upgrade; the next boot of B (`kiln validate` with `--data-disk`) completes it; the
 *     boot after is a plain start; A's root with B's data is refused as a downgrade, which
 *     validation reports in its table;
 *   - `kiln validate` of a deliberately broken copy of A's image (its sysctl file deleted) fails.
 * Provisioning runs for real on QEMU VMs; B's build guest reaches only the forwarded artifact server,
 * every other guest (A's build, the customer boots) reaches nothing at all.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { done, notYet, waitFor } from '../../src/core/wait.js';
import type { Manifest } from '../../src/pipeline/manifest.js';
import { generateKeyPair } from '../../src/ssh/index.js';
import { detectAccel } from '../../src/targets/local/accel.js';
import { createOverlay, launchVm, type VmHandle } from '../../src/targets/local/qemu.js';
import { createSeedIso } from '../../src/targets/local/seed.js';
import type { CheckResult } from '../../src/validate/run-checks.js';
import { startArtifacts, type ArtifactFixture, type Mirrors } from '../support/provision-fixture.js';

const isRoot = process.getuid?.() === 0;
const GUEST_SERVER = '10.0.2.100:8080';
const A = '5.2.0';
const B = '5.9.0';

interface Cli {
  exitCode?: number;
  stdout: string;
  stderr: string;
}

describe.skipIf(!isRoot)('kiln build and validate on the local target, then a customer upgrades', () => {
  let work: string;
  let artifacts: ArtifactFixture;
  let bundle: string;
  let bundleCli: Cli;
  let requestsDuringOfflineBuild: number;
  const builds: Record<string, { cli: Cli; manifest: Manifest }> = {};
  const vms: VmHandle[] = [];

  const kiln = (args: string[]) =>
    execa('node', ['bin/kiln.js', ...args], { reject: false, env: { CI: 'true', KILN_STATE_DIR: path.join(work, 'state') } });

  const mirrorFlags = (mirrors: Mirrors) => ['--mirror', `k3s=${mirrors.k3s}`, '--mirror', `helm=${mirrors.helm}`, '--mirror', `charts=${mirrors.charts}`];
  /** Where a build takes its artifacts from: the stand-in artifact server, or an offline bundle. */
  const online = () => ['--local-forward', `${GUEST_SERVER}=127.0.0.1:${artifacts.server.port}`, ...mirrorFlags(artifacts.mirrors(`http://${GUEST_SERVER}`))];
  const offline = (bundle: string) => ['--bundle', bundle];

  async function build(version: string, extra: string[]): Promise<void> {
    const manifestPath = path.join(work, `manifest-${version}.json`);
    const cli = await kiln([
      'build', 'images/sourcegraph.yaml', '--target', 'local', '--size', 'xs', '--version', version, ...extra,
      '--local-network', 'restricted', '--output-dir', path.join(work, `out-${version}`), '--manifest', manifestPath, '--verbose',
    ]);
    if (cli.exitCode !== 0) console.error(cli.stdout.split('\n').slice(-80).join('\n'), cli.stderr);
    builds[version] = { cli, manifest: JSON.parse(await readFile(manifestPath, 'utf8')) as Manifest };
  }

  const image = (version: string, disk: 'root' | 'data') =>
    builds[version]?.manifest.builds[0]?.artifacts.find((a) => a.disk === disk && a.format === 'qcow2')?.path ?? '';

  /** Boots root + data like a customer's instance (a key is authorized, but nothing here logs in). */
  async function boot(name: string, root: string, data: string, options: { files?: { path: string; content: string }[]; onConsoleLine?: (line: string) => void } = {}) {
    const client = generateKeyPair('customer');
    const hostKey = generateKeyPair('customer-host');
    const seed = path.join(work, `${name}-seed.iso`);
    await createSeedIso({ path: seed, instanceId: name, hostname: 'appliance', user: { name: 'customer', sshPublicKey: client.publicKey }, hostKey, files: options.files });
    const accel = await detectAccel();
    const vm = await launchVm({
      name: `kiln-e2e-${name}`, workDir: path.join(work, name), rootDisk: root, dataDisks: [{ path: data, serial: 'kiln-data' }], seedIso: seed,
      cpus: 2, memoryMiB: 2048, sshForward: { hostAddress: '127.0.0.1', hostPort: 0 }, accel: accel.accel, cpu: accel.cpu,
      serialLogPath: path.join(work, `${name}-console.log`), onConsoleLine: options.onConsoleLine,
    });
    vms.push(vm);
    return vm;
  }

  async function validate(rootImage: string, version: string, dataDisk: string, json: boolean): Promise<Cli> {
    return kiln([
      'validate', rootImage, '--target', 'local', '--definition', 'images/sourcegraph.yaml', '--size', 'xs', '--version', version,
      '--data-disk', dataDisk, ...(json ? ['--json'] : []),
    ]);
  }

  const checksOf = (cli: Cli) => (JSON.parse(cli.stdout) as { results: { passed: boolean; checks: CheckResult[] }[] }).results[0];
  const output = (checks: CheckResult[] | undefined, name: string) => checks?.find((c) => c.name === name)?.actual;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'kiln-e2e-build-'));
    artifacts = await startArtifacts();
    // The connected side: the bundle is made from the release sites (host URLs), then the server
    // is not offered to A's build at all.
    bundle = path.join(work, `sourcegraph-${A}.bundle.tar`);
    bundleCli = await kiln(['bundle', 'images/sourcegraph.yaml', '--version', A, '-o', bundle, '--cache-dir', path.join(work, 'bundle-cache'), ...mirrorFlags(artifacts.mirrors())]);
    if (bundleCli.exitCode !== 0) throw new Error(`kiln bundle failed:\n${bundleCli.stdout}\n${bundleCli.stderr}`);
    const served = artifacts.server.requests.length;
    await build(A, offline(bundle));
    requestsDuringOfflineBuild = artifacts.server.requests.length - served;
    await build(B, [...online(), '--validate']);
  });

  afterAll(async () => {
    for (const vm of vms) await vm.kill();
    await artifacts?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('builds both versions, writes the manifests and leaves nothing behind', async () => {
    for (const version of [A, B]) {
      const { cli, manifest } = builds[version] ?? { cli: { stdout: '', stderr: 'no build' }, manifest: { builds: [] } as unknown as Manifest };
      expect(cli.exitCode, cli.stderr).toBe(0);
      const [entry] = manifest.builds;
      expect(entry).toMatchObject({ target: 'local', size: 'XS', version, status: 'succeeded', k3sVersion: 'v1.29.6+k3s2', leftovers: [] });
      expect(entry?.artifacts.map((a) => `${a.disk}:${a.format}`).sort()).toEqual(['data:qcow2', 'data:vmdk', 'root:qcow2', 'root:vmdk']);
      for (const artifact of entry?.artifacts ?? []) expect(existsSync(artifact.path ?? '')).toBe(true);
      const ledger = JSON.parse(await readFile(path.join(work, 'state', 'runs', manifest.runId, 'ledger.json'), 'utf8')) as { entries: unknown[] };
      expect(ledger.entries).toEqual([]);
      expect((await execa('pgrep', ['-f', `kiln-${manifest.runId}`], { reject: false })).stdout).toBe('');
    }
  });

  it('builds A air-gapped: every artifact from the verified bundle, nothing asked of the artifact server', () => {
    expect(bundleCli.exitCode, bundleCli.stderr).toBe(0);
    const log = builds[A]?.cli.stdout ?? '';
    expect(log).toMatch(/bundle\| .*bundle verified: 5 artifacts match its manifest/);
    expect(log).toMatch(/uploaded \S+ to \S+\/bundle\.tar: \d+ bytes in \d+ ms, sha256 [0-9a-f]{64} verified there/);
    expect(requestsDuringOfflineBuild).toBe(0);
  });

  it('validates B before publishing: every check passes on a fresh instance, recorded in the manifest', () => {
    const entry = builds[B]?.manifest.builds[0];
    expect(entry?.timingsMs.validate).toBeGreaterThan(0);
    expect(entry?.validation?.passed).toBe(true);
    const names = entry?.validation?.checks.map((c) => c.name) ?? [];
    for (const name of ['boot unit succeeded', 'k3s is running', 'root volume version', 'data volume version', 'data volume mounted by label', '/var/lib/kubelet on the data volume', 'sysctl fs.inotify.max_user_watches', 'firewall trusts the cluster and service CIDRs', "only this instance's SSH key is authorized", 'sourcegraph release deployed']) {
      expect(names).toContain(name);
    }
    expect(entry?.validation?.checks.find((c) => c.name === 'boot unit report')?.output).toMatch(/first-boot to 5\.9\.0 done/);
    expect(builds[B]?.cli.stdout).toMatch(/validate\| pass\s+sourcegraph release deployed/);
  });

  it('upgrades A\'s data to B across a power cut, then starts plainly, and refuses to downgrade', async () => {
    const customerData = path.join(work, 'customer-data.qcow2');
    await createOverlay(image(A, 'data'), customerData);

    // 1. A's root, fresh data: the first boot deploys both charts, and the instance passes validation
    // with a network that reaches nothing (kiln validate's default on the local target).
    const first = await validate(image(A, 'root'), A, customerData, true);
    expect(first.exitCode, first.stdout + first.stderr).toBe(0);
    expect(output(checksOf(first)?.checks, 'data volume version')).toBe(A);
    expect(output(checksOf(first)?.checks, 'boot unit report')).toMatch(/first-boot to 5\.2\.0 done \(2 releases\)/);
    expect(checksOf(first)?.checks.find((c) => c.name === 'sourcegraph release deployed')?.passed).toBe(true);

    // 2. B's root with that data disk: the upgrade starts, and the power is cut while Helm upgrades.
    // (This instance's root is thrown away: the root volume is disposable, the data volume is not.)
    const rootCut = path.join(work, 'root-b-cut.qcow2');
    await createOverlay(image(B, 'root'), rootCut);
    let holding = false;
    const cut = await boot('power-cut', rootCut, customerData, {
      files: [{ path: '/etc/kiln-standins/faults', content: 'hang-during-upgrade sourcegraph\n' }],
      onConsoleLine: (line) => (holding ||= line.includes('holding the upgrade of sourcegraph')),
    });
    await waitFor(async () => (holding ? done(true) : notYet()), { what: 'the upgrade to reach Helm', timeoutMs: 20 * 60_000, initialDelayMs: 1_000, maxDelayMs: 2_000 });
    await cut.kill();

    // 3. The next boot with B's root completes the upgrade; 4. the one after only starts K3s.
    const completed = await validate(image(B, 'root'), B, customerData, true);
    expect(completed.exitCode, completed.stdout + completed.stderr).toBe(0);
    expect(output(checksOf(completed)?.checks, 'data volume version')).toBe(B);
    expect(output(checksOf(completed)?.checks, 'boot unit report')).toMatch(/upgrade to 5\.9\.0 done/);
    const again = await validate(image(B, 'root'), B, customerData, true);
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
    expect(output(checksOf(again)?.checks, 'boot unit report')).toMatch(/version 5\.9\.0 already deployed; K3s started, nothing else to do/);

    // 5. A's root with B's data: refused, and validation says so in its table.
    const downgrade = await validate(image(A, 'root'), A, customerData, false);
    expect(downgrade.exitCode).toBe(1);
    expect(downgrade.stdout).toMatch(/FAIL\s+boot unit succeeded\s+expected "active", got failed/);
    expect(downgrade.stdout).toMatch(/FAIL\s+data volume version\s+expected "5\.2\.0", got 5\.9\.0/);
    expect(downgrade.stdout).toMatch(/REFUSING TO DOWNGRADE/);
    expect(downgrade.stdout).toMatch(/checks failed/);
  });

  it('fails the validation of a deliberately broken image, with a table saying what is wrong', async () => {
    // Break A's image without booting it: delete kiln's sysctl file from the root filesystem.
    const broken = path.join(work, 'broken-root.raw');
    await execa('qemu-img', ['convert', '-O', 'raw', image(A, 'root'), broken]);
    const table = JSON.parse((await execa('sfdisk', ['--json', broken])).stdout) as { partitiontable: { sectorsize?: number; partitions: { start: number; size: number }[] } };
    const rootfs = [...table.partitiontable.partitions].sort((a, b) => b.size - a.size)[0];
    const offset = (rootfs?.start ?? 0) * (table.partitiontable.sectorsize ?? 512);
    await execa('debugfs', ['-w', '-R', 'rm /etc/sysctl.d/90-kiln.conf', `${broken}?offset=${offset}`]);

    const data = path.join(work, 'broken-data.qcow2');
    await createOverlay(image(A, 'data'), data);

    const cli = await validate(broken, A, data, false);
    expect(cli.exitCode, cli.stderr).toBe(1);
    expect(cli.stdout).toMatch(/local XS 5\.2\.0: FAILED/);
    expect(cli.stdout).toMatch(/FAIL\s+sysctl vm\.max_map_count\s+expected "262144", got 65530/);
    expect(cli.stdout).toMatch(/pass\s+boot unit succeeded/);
    expect(cli.stdout).toMatch(/pass\s+sourcegraph release deployed/);
    expect(cli.stdout).toMatch(/\d of 22 checks failed/);
  });
});
