/**
 * The provisioning scripts, run as kiln runs them (plan order, the plan's environment and files)
 * in a throwaway Debian 12 root (see test/support/sandbox): each twice, with the second run
 * changing nothing; what they leave behind; and how they fail (bad checksums, cut downloads).
 * Needs root (unshare, mount, loop devices); the Debian tree is built once and cached.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Plan, ProvisionStep } from '../../../src/definition/plan.js';
import { k3sConfig } from '../../../src/provision/steps.js';
import { loadDefinition } from '../../../src/definition/load.js';
import { NETWORK_STEPS, PROVISIONED_PATHS, planFor, startArtifacts, stepOf, TEST_IMAGE, TEST_REGISTRY, type ArtifactFixture } from '../../support/provision-fixture.js';
import { provisionRootfs } from '../../support/sandbox/rootfs.js';
import { Sandbox, type RunOptions } from '../../support/sandbox/sandbox.js';
import { runEveryStepTwice, type StepsRunTwice } from '../../support/sandbox/twice.js';

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('provisioning scripts in a throwaway Debian 12 root', () => {
  let dir: string;
  let artifacts: ArtifactFixture;
  let plan: Plan;
  let sandbox: Sandbox;
  /** Clone of the sandbox just before the generalize step. */
  let beforeGeneralize: Sandbox;
  let firstRuns: StepsRunTwice['firstRuns'];
  let secondRuns: StepsRunTwice['secondRuns'];
  let manifests: StepsRunTwice['manifests'];

  // mountAll: the machine's mounts (the data volume and its binds) are there, as on the build VM.
  const runOptions = (step: ProvisionStep): RunOptions => ({ network: NETWORK_STEPS.has(step.id) ? 'host' : 'none', mountAll: true });
  const run = (sb: Sandbox, step: ProvisionStep, extraEnv?: Record<string, string>, after?: string) =>
    sb.runStep(step, { ...runOptions(step), ...(extraEnv ? { extraEnv } : {}), ...(after ? { after } : {}) });

  beforeAll(async () => {
    const rootfs = await provisionRootfs();
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-provision-'));
    artifacts = await startArtifacts();
    plan = await planFor('images/sourcegraph.yaml', 'local', 'xs', '5.2.0', artifacts.mirrors());
    sandbox = await Sandbox.create(path.join(dir, 'vm'), rootfs);
    ({ firstRuns, secondRuns, manifests, beforeGeneralize } = await runEveryStepTwice(sandbox, plan.provision, { workDir: dir, paths: PROVISIONED_PATHS, runOptions }));
  }, 1_800_000);

  afterAll(async () => {
    await artifacts?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs every step of the plan, in order', () => {
    expect([...firstRuns.keys()]).toEqual(['base', 'data-volume', 'kernel', 'firewall', 'k3s', 'helm', 'charts', 'version', 'generalize']);
  });

  it.each(['base', 'data-volume', 'kernel', 'firewall', 'k3s', 'helm', 'charts', 'version', 'generalize'])(
    'step %s changes nothing when run a second time',
    (id) => {
      const [first, second] = manifests.get(id) ?? ['', ''];
      expect(first.split('\n').length).toBeGreaterThan(100);
      expect(second).toBe(first);
      // (The staging directory is uploaded again before every step, so generalize removes it again.)
      const output = (secondRuns.get(id) ?? '').replaceAll('removed /var/tmp/kiln-build\n', '');
      expect(output).not.toMatch(/kiln\/[a-z-]+: (wrote|removed|linked|formatting|bound|mounted|truncated) /);
    },
  );

  it('formats the data disk once, mounts it by label with nofail and binds the links after it', async () => {
    expect(firstRuns.get('data-volume')).toContain('formatting blank /dev/loop');
    expect(secondRuns.get('data-volume')).toContain('already mounted');
    const fstab = await sandbox.check('cat /etc/fstab');
    expect(fstab).toContain('LABEL=sgdata /mnt/data ext4 defaults,nofail,x-systemd.device-timeout=120s 0 2');
    expect(fstab).toContain('/mnt/data/k3s/db /var/lib/rancher/k3s/server/db none bind,nofail,x-systemd.requires-mounts-for=/mnt/data 0 0');
    expect(fstab).toContain('/mnt/data/kubelet /var/lib/kubelet none bind,nofail,x-systemd.requires-mounts-for=/mnt/data 0 0');
    expect(fstab.indexOf('LABEL=sgdata')).toBeLessThan(fstab.indexOf('/mnt/data/k3s/db'));
    // What a boot's `mount -a` makes of it: the labelled volume and the three binds.
    const mounts = await sandbox.check(
      'findmnt -n -o TARGET,FSROOT --mountpoint /mnt/data; for p in /var/lib/rancher/k3s/server/db /var/lib/rancher/k3s/storage /var/lib/kubelet; do findmnt -n -o TARGET,FSROOT --mountpoint $p; done; blkid -s LABEL -o value "$(findmnt -n -o SOURCE --mountpoint /mnt/data)"',
      { mountAll: true },
    );
    expect(mounts.split('\n').map((l) => l.trim().split(/\s+/).join(' '))).toEqual([
      '/mnt/data /',
      '/var/lib/rancher/k3s/server/db /k3s/db',
      '/var/lib/rancher/k3s/storage /k3s/storage',
      '/var/lib/kubelet /kubelet',
      'sgdata',
      '',
    ]);
    expect(await sandbox.check('cat /etc/systemd/system/k3s.service.d/10-kiln-data.conf')).toContain(
      'RequiresMountsFor=/mnt/data /var/lib/rancher/k3s/server/db /var/lib/rancher/k3s/storage /var/lib/kubelet',
    );
  });

  it('installs the sysctls, applies them, and sets the limits', async () => {
    const sysctlFile = stepOf(plan, 'kernel').files[0]?.content;
    expect(await sandbox.check('cat /etc/sysctl.d/90-kiln.conf')).toBe(sysctlFile);
    const limits = await sandbox.check('cat /etc/security/limits.d/90-kiln.conf');
    expect(limits).toMatch(/^\* +hard nofile 1048576$/m);
    expect(limits).toMatch(/^root +soft nproc +1048576$/m);
    expect(await sandbox.check('cat /etc/systemd/system.conf.d/90-kiln.conf')).toContain('DefaultLimitNOFILE=1024:1048576');
    const sysctlCalls = (await beforeGeneralize.fakesLog()).filter((c) => c.tool === 'sysctl');
    expect(sysctlCalls.map((c) => c.argv.join(' '))).toContain('-q -p /etc/sysctl.d/90-kiln.conf');
  });

  it('persists a firewall that nft loads at boot: the K3s networks, SSH and the listed ports', async () => {
    // A fresh network namespace, as at boot: load the distribution's config, list what is live.
    const live = await sandbox.check('nft -f /etc/nftables.conf && nft list ruleset');
    expect(live).toContain('table inet kiln');
    expect(live).toContain('policy drop;');
    expect(live).toContain('ip saddr { 10.10.0.0/16, 10.43.0.0/16 } accept');
    expect(live).toContain('tcp dport { 22, 80, 443, 6443 } accept');
    expect(live).not.toContain('udp dport {');
    expect(await sandbox.check('systemctl is-enabled nftables.service')).toBe('enabled\n');
    // Reloading replaces only kiln's table: another table (as K3s keeps) survives.
    const reload = await sandbox.check('nft add table ip k3s-like && nft -f /etc/nftables.conf && nft -f /etc/nftables.conf && nft list tables');
    expect(reload).toContain('table ip k3s-like');
    expect(reload.match(/table inet kiln/g)).toHaveLength(1);
  });

  it('installs K3s verified, configured, not enabled, with no cluster identity', async () => {
    const k3sSha = artifacts.built.k3s['v1.29.6+k3s2']?.binarySha256;
    expect(await sandbox.check('sha256sum /usr/local/bin/k3s | cut -c1-64')).toBe(`${k3sSha}\n`);
    expect(await sandbox.check('readlink /usr/local/bin/kubectl')).toBe('k3s\n');
    const definition = (await loadDefinition('images/sourcegraph.yaml')).definition;
    expect(await sandbox.check('cat /etc/rancher/k3s/config.yaml')).toBe(k3sConfig(definition));
    expect(await sandbox.check('stat -c %a /etc/rancher/k3s/config.yaml')).toBe('600\n');
    expect(await sandbox.check('cat /etc/rancher/k3s/config.yaml')).toContain('token-file: /mnt/data/.kiln/k3s-token');
    expect((await sandbox.sh('systemctl is-enabled k3s.service')).stdout.trim()).toBe('disabled');
    expect(await sandbox.check('grep -x "ExecStart=/usr/local/bin/k3s server" /etc/systemd/system/k3s.service')).toBeTruthy();
    const airgap = artifacts.built.k3s['v1.29.6+k3s2']?.airgapSha256;
    expect(await sandbox.check('sha256sum /var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst | cut -c1-64')).toBe(`${airgap}\n`);
    const identity = await sandbox.check(
      'cd /var/lib/rancher/k3s && ls -A server/db; for p in server/tls server/token server/cred /etc/rancher/node/password /etc/rancher/k3s/k3s.yaml; do [ ! -e "$p" ] || echo "present $p"; done',
      { mountAll: true },
    );
    expect(identity).toBe('');
  });

  it('installs Helm verified and stages the charts with their digests and the XS values', async () => {
    expect(await sandbox.check('helm version --template "{{.Version}}"')).toBe('v3.14.4');
    const table = (await sandbox.check('cat /opt/kiln/charts.tsv')).trim().split('\n').map((l) => l.split('\t'));
    expect(table).toEqual([
      ['sourcegraph', 'sourcegraph', '5.2.0', 'default', '/opt/kiln/charts/sourcegraph-5.2.0.tgz', artifacts.built.charts['sourcegraph-5.2.0']?.sha256],
      [
        'sourcegraph-executor-k8s',
        'sourcegraph-executor-k8s',
        '5.2.0',
        'default',
        '/opt/kiln/charts/sourcegraph-executor-k8s-5.2.0.tgz',
        artifacts.built.charts['sourcegraph-executor-k8s-5.2.0']?.sha256,
      ],
    ]);
    expect(await sandbox.check('cat /opt/kiln/values/sourcegraph/00.yaml')).toBe(await readFile('images/values/sourcegraph/xs.yaml', 'utf8'));
    expect(await sandbox.check('cat /opt/kiln/values/sourcegraph-executor-k8s/00.yaml')).toBe(await readFile('images/values/executor/xs.yaml', 'utf8'));
    // helm pull kept no repository state.
    expect(await sandbox.check('ls -A /root/.cache /root/.config 2>/dev/null || true')).toBe('');
  });

  it('pins the version and installs the boot unit, enabled', async () => {
    expect(await sandbox.check('cat /etc/sourcegraph/version')).toBe('5.2.0\n');
    expect(await sandbox.check('systemctl is-enabled kiln-boot.service')).toBe('enabled\n');
    expect(await sandbox.check('cat /etc/kiln/boot.conf')).toContain('DATA_VERSION_FILE=.sourcegraph-version');
    expect(await sandbox.check('cmp /usr/local/lib/kiln/kiln-boot.sh /run/kiln-src/provision/boot/kiln-boot.sh && echo same')).toBe('same\n');
  });

  it('generalizes: no host keys, machine-id, histories, staging files or caches', async () => {
    await beforeGeneralize.check('mkdir -p /root/.ssh && echo ssh-ed25519 AAAA test > /root/.ssh/authorized_keys && echo ls > /root/.bash_history');
    const sb = beforeGeneralize;
    expect(await sb.check('ls /etc/ssh/ssh_host_* | wc -l')).not.toBe('0\n');
    const result = await run(sb, stepOf(plan, 'generalize'));
    expect(result.exitCode, result.all).toBe(0);
    const left = await sb.check(
      'ls /etc/ssh/ssh_host_* /root/.ssh/authorized_keys /root/.bash_history /var/tmp/kiln-build 2>/dev/null || true; wc -c < /etc/machine-id; ls -A /var/lib/apt/lists | grep -v -x -e partial -e lock -e auxfiles || true',
    );
    expect(left).toBe('0\n');
    expect((await sb.fakesLog()).some((c) => c.tool === 'fstrim' && c.argv.includes('--all'))).toBe(true);
  });

  describe('failures', () => {
    let scratch: Sandbox;
    beforeAll(async () => {
      scratch = await beforeGeneralize.clone(path.join(dir, 'scratch'));
    }, 300_000);

    it('refuses a K3s binary whose checksum does not match, and keeps the installed one', async () => {
      const goodSha = await scratch.check('sha256sum /usr/local/bin/k3s | cut -c1-64');
      await scratch.check('echo "#!/bin/sh" > /usr/local/bin/k3s');
      artifacts.server.setFault('/k3s/v1.29.6+k3s2/sha256sum-amd64.txt', { kind: 'wrong-checksum' });
      try {
        const result = await run(scratch, stepOf(plan, 'k3s'));
        expect(result.exitCode).not.toBe(0);
        expect(result.all).toMatch(/checksum mismatch for http:\/\/127\.0\.0\.1:\d+\/k3s\/v1\.29\.6%2Bk3s2\/k3s: expected sha256 [a-f0-9]{64}, got /);
      } finally {
        artifacts.server.clearFaults();
      }
      const retry = await run(scratch, stepOf(plan, 'k3s'));
      expect(retry.exitCode, retry.all).toBe(0);
      expect(await scratch.check('sha256sum /usr/local/bin/k3s | cut -c1-64')).toBe(goodSha);
    });

    it('refuses a pinned K3s sha256 that does not match', async () => {
      const result = await run(scratch, stepOf(plan, 'k3s'), { KILN_K3S_SHA256: 'a'.repeat(64) });
      expect(result.exitCode).not.toBe(0);
      expect(result.all).toContain(`expected sha256 ${'a'.repeat(64)}`);
    });

    it('retries a download cut in the middle, and gives up on one that is always cut', async () => {
      await scratch.check('rm -f /usr/local/bin/helm');
      artifacts.server.setFault('/helm/helm-v3.14.4-linux-amd64.tar.gz', { kind: 'cut', afterBytes: 1000, times: 1 });
      try {
        const result = await run(scratch, stepOf(plan, 'helm'));
        expect(result.exitCode, result.all).toBe(0);
        expect(result.all).toContain('retrying');
        const cut = artifacts.server.requests.filter((r) => r.path === '/helm/helm-v3.14.4-linux-amd64.tar.gz');
        expect(cut.at(-2)?.fault).toBe('cut');
        expect(cut.at(-1)?.fault).toBeUndefined();

        artifacts.server.setFault('/helm/helm-v3.14.4-linux-amd64.tar.gz', { kind: 'cut', afterBytes: 1000 });
        const always = await run(scratch, stepOf(plan, 'helm'), { KILN_DOWNLOAD_TIMEOUT: '3' });
        expect(always.exitCode).not.toBe(0);
        expect(always.all).toMatch(/download of http:\/\/127\.0\.0\.1:\d+\/helm\/helm-v3\.14\.4-linux-amd64\.tar\.gz failed after \d+ attempts \(curl exit 18/);
      } finally {
        artifacts.server.clearFaults();
      }
      expect(await scratch.check('helm version --template "{{.Version}}"')).toBe('v3.14.4');
    });

    it('refuses a chart whose archive does not match the repository index digest', async () => {
      await scratch.check('rm -f /opt/kiln/charts/sourcegraph-5.2.0.tgz');
      artifacts.server.setFault('/charts/index.yaml', { kind: 'wrong-checksum' });
      try {
        const result = await run(scratch, stepOf(plan, 'charts'));
        expect(result.exitCode).not.toBe(0);
        expect(result.all).toMatch(/checksum mismatch for chart sourcegraph 5\.2\.0 from http:\/\/127\.0\.0\.1:\d+\/charts/);
      } finally {
        artifacts.server.clearFaults();
      }
    });

    it('fails with a clear message on an unsupported distribution, changing nothing', async () => {
      await scratch.check('cp /etc/os-release /root/os-release.orig && printf "ID=centos\\nVERSION_ID=7\\nPRETTY_NAME=\\"CentOS Linux 7\\"\\n" > /usr/lib/os-release');
      try {
        const result = await run(scratch, stepOf(plan, 'base'));
        expect(result.exitCode).toBe(1);
        expect(result.all).toContain('unsupported distribution CentOS Linux 7 (supported: Debian 12, Ubuntu 22.04, Ubuntu 24.04, Amazon Linux 2023)');
      } finally {
        await scratch.check('cp /root/os-release.orig /usr/lib/os-release && rm /root/os-release.orig');
      }
    });

    it('never takes the values of the environment as shell code', async () => {
      const marker = '/tmp/kiln-injected';
      const step = stepOf(plan, 'version');
      const result = await run(scratch, step, { KILN_PRODUCT_VERSION: `5.2.0$(touch ${marker})`, KILN_DATA_LABEL: `x;touch ${marker}` });
      expect(result.exitCode).toBe(1);
      expect(result.all).toContain('is not a semantic version');
      expect(await scratch.check(`[ -e ${marker} ] && echo injected || echo clean`)).toBe('clean\n');
      expect(await scratch.check('cat /etc/sourcegraph/version')).toBe('5.2.0\n');
    });
  });

  describe('container images for offline deploys', () => {
    let imaging: Sandbox;
    let result: { exitCode: number; all: string };
    const imageRef = `${TEST_REGISTRY}/${TEST_IMAGE}`;

    beforeAll(async () => {
      imaging = await beforeGeneralize.clone(path.join(dir, 'images'));
      const charts = stepOf(plan, 'charts');
      const step: ProvisionStep = {
        ...charts,
        files: charts.files.map((f) => (f.path.endsWith('/images.txt') ? { ...f, content: `${imageRef}\n` } : f)),
      };
      result = await run(imaging, step, { KILN_REGISTRY_MIRROR: artifacts.server.url, KILN_REGISTRY_MIRRORED: `docker.io ${TEST_REGISTRY}` });
    }, 300_000);

    it('pulls the linux/amd64 image through the mirror (token auth), verifies it and saves an OCI archive', async () => {
      expect(result.exitCode, result.all).toBe(0);
      const image = artifacts.built.images[TEST_IMAGE];
      const archive = `/var/lib/rancher/k3s/agent/images/kiln-image-${TEST_REGISTRY}_kiln_hello_1.0.tar`;
      const [ref, digest, file, archiveSha] = (await imaging.check('cat /opt/kiln/images.tsv')).trim().split('\t');
      expect([ref, digest, file]).toEqual([imageRef, image?.amd64Digest, archive]);
      expect(await imaging.check(`sha256sum ${archive} | cut -c1-64`)).toBe(`${archiveSha}\n`);
      const index = JSON.parse(await imaging.check(`tar -xOf ${archive} index.json`)) as { manifests: { digest: string; annotations: Record<string, string> }[] };
      expect(index.manifests[0]?.digest).toBe(image?.amd64Digest);
      expect(index.manifests[0]?.annotations['io.containerd.image.name']).toBe(imageRef);
      expect(await imaging.check(`tar -tf ${archive} | sort`)).toContain(`blobs/sha256/${image?.layerDigest.slice(7)}`);
      // Through the mirror, with ?ns=<registry>, after a bearer-token challenge; arm64 never fetched.
      const registry = artifacts.server.requests.filter((r) => r.path.startsWith('/v2/'));
      expect(registry.some((r) => r.status === 401)).toBe(true);
      expect(registry.filter((r) => r.status === 200).every((r) => r.query === `?ns=${TEST_REGISTRY}`)).toBe(true);
      expect(registry.filter((r) => r.status === 404)).toEqual([]);
    });

    it('keeps the archive on a second run, and K3s imports it at start', async () => {
      const requestsBefore = artifacts.server.requests.filter((r) => r.path.startsWith('/v2/')).length;
      const charts = stepOf(plan, 'charts');
      const again = await run(
        imaging,
        { ...charts, files: charts.files.map((f) => (f.path.endsWith('/images.txt') ? { ...f, content: `${imageRef}\n` } : f)) },
        { KILN_REGISTRY_MIRROR: artifacts.server.url, KILN_REGISTRY_MIRRORED: TEST_REGISTRY },
      );
      expect(again.exitCode, again.all).toBe(0);
      expect(again.all).toContain(`image ${imageRef} already in`);
      expect(artifacts.server.requests.filter((r) => r.path.startsWith('/v2/')).length).toBe(requestsBefore);

      const boot = await imaging.run(['/usr/local/lib/kiln/kiln-boot.sh'], { mountAll: true });
      expect(boot.exitCode, boot.all).toBe(0);
      const imported = (await imaging.standinLog()).filter((e) => e.event === 'images-imported').at(-1) as { archives: { file: string; format: string; sha256: string }[] };
      expect(imported.archives.map((a) => [a.file.split('/').pop(), a.format])).toEqual([
        ['k3s-airgap-images-amd64.tar.zst', 'oci'],
        [`kiln-image-${TEST_REGISTRY}_kiln_hello_1.0.tar`, 'oci'],
      ]);
    });

    it('removes the archive of an image no longer listed', async () => {
      const clean = await run(imaging, stepOf(plan, 'charts'));
      expect(clean.exitCode, clean.all).toBe(0);
      expect(await imaging.check('ls /var/lib/rancher/k3s/agent/images')).toBe('k3s-airgap-images-amd64.tar.zst\n');
      expect(await imaging.check('cat /opt/kiln/images.tsv')).toBe('');
    });
  });
});
