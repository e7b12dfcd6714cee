/**
 * End to end on QEMU: the Debian 12 base image boots with a data disk, the provisioning scripts
 * run over SSH exactly as kiln runs them (src/provision/runner.ts: one upload, then each step with
 * sudo and its plan environment), all of them twice (the second pass changes nothing), the VM is
 * powered off and booted again like a freshly launched instance, and the result is checked live:
 * sysctls, firewall rules, the data volume mounted by label with its binds, version files, the boot
 * unit's first-boot deploy as recorded by the stand-ins, and no identity left by generalize.
 *
 * The guest reaches only the test's artifact server (QEMU user networking with restrict=on and one
 * guestfwd to 10.0.2.100:8080): the stand-in K3s and Helm releases, the chart repository, and a
 * flat apt repository with the packages base.sh installs (the guest's apt sources point there).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { done, notYet, waitFor } from '../../src/core/wait.js';
import type { Plan } from '../../src/definition/plan.js';
import { runProvisioning } from '../../src/provision/runner.js';
import { generateKeyPair, SshSession, type SshKeyPair } from '../../src/ssh/index.js';
import { detectAccel } from '../../src/targets/local/accel.js';
import { buildBaseImage } from '../../src/targets/local/base/build.js';
import { createBlankDisk, createOverlay, launchVm, type VmHandle } from '../../src/targets/local/qemu.js';
import { createSeedIso } from '../../src/targets/local/seed.js';
import { writeFlatAptRepo } from '../support/apt-repo.js';
import { planFor, startArtifacts, type ArtifactFixture } from '../support/provision-fixture.js';
import { baseDebs, cacheDir, provisionRootfs } from '../support/sandbox/rootfs.js';

const isRoot = process.getuid?.() === 0;
const GUEST_SERVER = 'http://10.0.2.100:8080';
const USER = 'sourcegraph';
/** Paths the scripts may change; /var/lib/systemd is left out (timers stamp it on their own). */
const PATHS = ['/etc', '/usr/local', '/opt/kiln', '/var/lib/rancher', '/var/lib/kubelet', '/mnt/data', '/root', '/home'];
const MANIFEST = `for p in ${PATHS.join(' ')}; do
  [ -e "$p" ] || { echo "absent $p"; continue; }
  find "$p" -printf '%p %y %m %U:%G %s %T@ %l\\n' | sort | while read -r f t rest; do
    if [ "$t" = f ]; then echo "$f $t $rest $(sha256sum "$f" | cut -c1-64)"; else echo "$f $t $rest"; fi
  done
done`;

interface Event {
  tool: string;
  event: string;
  argv: string[];
  env: Record<string, string>;
  release?: string;
  chart?: { path: string; version: string };
  values?: { path: string; content: string }[];
}

describe.skipIf(!isRoot)('provisioning a Debian 12 VM end to end', () => {
  let work: string;
  let artifacts: ArtifactFixture;
  let plan: Plan;
  let vm: VmHandle | undefined;
  let session: SshSession | undefined;
  let client: SshKeyPair;
  let host: SshKeyPair;
  let disks: { root: string; data: string; seed: string };
  const log: string[] = [];
  const manifests: string[] = [];
  let afterGeneralize = '';
  let runs: string[][] = [];

  const sh = async (command: string) => {
    if (!session) throw new Error('no SSH session');
    const lines: string[] = [];
    const result = await session.exec(command, { sudo: true, quiet: true, onLine: (_s, line) => lines.push(line), timeoutMs: 300_000 });
    if (result.code !== 0) throw new Error(`guest command failed (${result.code}): ${command}\n${result.tail.join('\n')}`);
    return lines.join('\n');
  };

  async function boot(name: string): Promise<void> {
    const accel = (await detectAccel()).accel;
    vm = await launchVm({
      name,
      workDir: path.join(work, name),
      rootDisk: disks.root,
      dataDisks: [{ path: disks.data, serial: 'kiln-data' }],
      seedIso: disks.seed,
      cpus: 2,
      memoryMiB: 2048,
      sshForward: { hostAddress: '127.0.0.1', hostPort: 0 },
      guestForwards: [{ guestAddress: '10.0.2.100', guestPort: 8080, hostAddress: '127.0.0.1', hostPort: artifacts.server.port }],
      accel,
      serialLogPath: path.join(work, `${name}-console.log`),
    });
    session = await SshSession.connect({
      host: vm.sshAddress.host,
      port: vm.sshAddress.port,
      username: USER,
      privateKey: client.privateKey,
      hostKeys: [host.publicKey],
      timeoutMs: 20 * 60_000,
      onLog: (line) => log.push(line),
    });
  }

  async function powerOff(): Promise<void> {
    session?.close();
    session = undefined;
    if (vm) await vm.shutdown({ timeoutMs: 5 * 60_000 });
    vm = undefined;
  }

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'kiln-e2e-provision-'));
    const base = await buildBaseImage({ distro: 'debian-12', cacheDir: cacheDir() });
    const rootfs = await provisionRootfs();
    artifacts = await startArtifacts();
    await writeFlatAptRepo(path.join(artifacts.built.root, 'apt'), await baseDebs(rootfs));
    plan = await planFor('images/sourcegraph.yaml', 'local', 'xs', '5.2.0', artifacts.mirrors(GUEST_SERVER));

    disks = { root: path.join(work, 'root.qcow2'), data: path.join(work, 'data.qcow2'), seed: path.join(work, 'seed.iso') };
    await createOverlay(base.path, disks.root, 8);
    await createBlankDisk(disks.data, 2);
    client = generateKeyPair('kiln-e2e');
    host = generateKeyPair('kiln-e2e-host');
    await createSeedIso({ path: disks.seed, instanceId: 'kiln-e2e-provision', hostname: 'kiln-e2e', user: { name: USER, sshPublicKey: client.publicKey }, hostKey: host });
    await boot('build');

    // The guest's only package source: the test's flat repository with base.sh's packages.
    await sh(`mkdir -p /etc/apt/kiln-e2e && mv /etc/apt/sources.list /etc/apt/kiln-e2e/ && echo 'deb [trusted=yes] ${GUEST_SERVER}/apt ./' > /etc/apt/sources.list`);
    // kiln's base image carries base.sh's tools (for restricted builds); a cloud image does not.
    // Remove two so base.sh's install path runs, as it would on a cloud's stock image.
    await sh('DEBIAN_FRONTEND=noninteractive apt-get remove -y -q jq nftables >/dev/null');

    for (let pass = 1; pass <= 2; pass++) {
      const lines: string[] = [];
      if (!session) throw new Error('no SSH session');
      await runProvisioning({ session, steps: plan.provision, runtimeEnv: {}, log: (line) => lines.push(line) });
      runs.push(lines);
      manifests.push(await sh(MANIFEST));
      if (pass === 1) {
        afterGeneralize = await sh(
          'for p in /etc/ssh/ssh_host_ed25519_key /root/.ssh/authorized_keys /home/sourcegraph/.ssh/authorized_keys /var/tmp/kiln-build /var/lib/rancher/k3s/server/tls /var/lib/rancher/k3s/server/token /var/lib/rancher/k3s/server/cred /etc/rancher/node/password /etc/rancher/k3s/k3s.yaml /var/lib/cloud/instance; do [ ! -e "$p" ] || echo "present $p"; done; echo "machine-id $(wc -c < /etc/machine-id)"; echo "db $(ls -A /var/lib/rancher/k3s/server/db | wc -l)"',
        );
      }
    }
    await powerOff();
    await boot('first-boot');
    // The boot unit runs once per boot; wait until it has finished, whatever the outcome.
    await waitFor(
      async () => {
        const state = await sh('systemctl show -p ActiveState --value kiln-boot.service').catch(() => '');
        return state === 'active' || state === 'failed' ? done(state) : notYet(state);
      },
      { what: 'kiln-boot.service to finish', timeoutMs: 20 * 60_000, initialDelayMs: 1000, maxDelayMs: 10_000 },
    );
  }, 3_600_000);

  afterAll(async () => {
    if (process.env.KILN_E2E_KEEP) console.log(`e2e work dir kept: ${work}\n${log.join('\n')}`);
    await powerOff().catch(() => undefined);
    await artifacts?.close();
    if (work && !process.env.KILN_E2E_KEEP) await rm(work, { recursive: true, force: true });
    runs = [];
  });

  it('ran every step in plan order, installing base.sh packages from the repository', () => {
    const first = runs[0] ?? [];
    const order = first.filter((l) => /^provision \d+\/9: /.test(l)).map((l) => l.split(': ')[1]);
    expect(order).toEqual(['base', 'data-volume', 'kernel', 'firewall', 'k3s', 'helm', 'charts', 'version', 'generalize']);
    expect(first.join('\n')).toMatch(/kiln\/base: installing: .*nftables/);
    expect(first.join('\n')).toContain('formatting blank /dev/vdb as ext4, label sgdata');
  });

  it('changed nothing on the second pass', () => {
    expect(manifests).toHaveLength(2);
    expect(manifests[0]?.split('\n').length).toBeGreaterThan(500);
    expect(manifests[1]).toBe(manifests[0]);
    expect((runs[1] ?? []).join('\n')).not.toMatch(/kiln\/(base|data-volume|kernel|firewall|k3s|helm|charts|version): (wrote|installing|formatting|linked|removed) /);
  });

  it('left no identity after generalize', () => {
    expect(afterGeneralize).toBe('machine-id 0\ndb 0');
  });

  it('boots with the sysctls live', async () => {
    expect(await sh('sysctl -n fs.inotify.max_user_watches vm.max_map_count kernel.panic')).toBe('1048576\n262144\n10');
  });

  it('boots with the firewall rules live', async () => {
    const rules = await sh('nft list table inet kiln');
    expect(rules).toContain('policy drop;');
    expect(rules).toContain('ip saddr { 10.10.0.0/16, 10.43.0.0/16 } accept');
    expect(rules).toContain('tcp dport { 22, 80, 443, 6443 } accept');
    expect(await sh('systemctl is-enabled nftables.service')).toBe('enabled');
  });

  it('boots with the data volume mounted by label and its bind mounts', async () => {
    expect(await sh('findmnt -n -o SOURCE,FSTYPE --mountpoint /mnt/data | tr -s " "')).toBe('/dev/vdb ext4');
    expect(await sh('blkid -s LABEL -o value /dev/vdb')).toBe('sgdata');
    for (const [pathOnRoot, target] of [
      ['/var/lib/rancher/k3s/server/db', '/k3s/db'],
      ['/var/lib/rancher/k3s/storage', '/k3s/storage'],
      ['/var/lib/kubelet', '/kubelet'],
    ]) {
      expect(await sh(`findmnt -n -o SOURCE --mountpoint ${pathOnRoot}`)).toBe(`/dev/vdb[${target}]`);
    }
  });

  it('boots with the version files and the boot unit having done the first deploy', async () => {
    expect(await sh('cat /etc/sourcegraph/version')).toBe('5.2.0');
    expect(await sh('cat /mnt/data/.sourcegraph-version')).toBe('5.2.0');
    expect(await sh('systemctl is-active kiln-boot.service k3s.service')).toBe('active\nactive');
    expect(await sh('systemctl is-enabled k3s.service || true')).toBe('disabled');
    const bootLog = await sh('cat /var/log/kiln-boot.log');
    expect(bootLog).toContain('root version 5.2.0, data version none: first-boot');
    expect(bootLog).toMatch(/first-boot to 5\.2\.0 done \(2 releases\); data version is now 5\.2\.0/);
  });

  it('recorded K3s started by systemd and helm installing each chart with the XS values', async () => {
    const events = (await sh('cat /var/log/kiln-standins.jsonl'))
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Event);
    const server = events.find((e) => e.event === 'server-ready');
    expect(server?.env.INVOCATION_ID, 'k3s server runs under systemd').toMatch(/^[0-9a-f]{32}$/);
    const installs = events.filter((e) => e.tool === 'helm' && e.event === 'upgrade');
    expect(installs.map((e) => [e.release, e.chart?.version])).toEqual([
      ['sourcegraph', '5.2.0'],
      ['sourcegraph-executor-k8s', '5.2.0'],
    ]);
    expect(installs[0]?.argv).toContain('--install');
    expect(installs[0]?.values?.map((v) => v.content)).toEqual([(await readFile('images/values/sourcegraph/xs.yaml', 'utf8')).trimEnd()]);
    expect(installs[1]?.values?.map((v) => v.content)).toEqual([(await readFile('images/values/executor/xs.yaml', 'utf8')).trimEnd()]);
    const imported = events.find((e) => e.event === 'images-imported') as unknown as { archives: { file: string }[] };
    expect(imported.archives.map((a) => a.file)).toEqual(['/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst']);
  });
});
