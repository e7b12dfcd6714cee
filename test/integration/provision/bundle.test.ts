/**
 * Provisioning from an offline bundle in the throwaway Debian root (test/support/sandbox) with no
 * network at all: every step runs in a private network namespace, and the servers the bundle was
 * made from (the stand-in release sites and chart repository, a real registry for the images) are
 * stopped before the first step. Each step runs twice and the second run changes nothing. The
 * definition names a registry mirror with its CA: the image gets registries.yaml trusting it.
 * Needs root, like the other sandbox tests.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBundle, verifyBundle, type CreatedBundle } from '../../../src/bundle/index.js';
import { loadDefinition } from '../../../src/definition/load.js';
import type { Plan, ProvisionStep } from '../../../src/definition/plan.js';
import { resolve } from '../../../src/definition/resolve.js';
import { AIRGAP_VERSION, airgapDefinition } from '../../support/bundle-fixture.js';
import { PROVISIONED_PATHS, startArtifacts, stepOf } from '../../support/provision-fixture.js';
import { startRegistry, type PushedImage } from '../../support/registry.js';
import { provisionRootfs } from '../../support/sandbox/rootfs.js';
import { Sandbox, type RunOptions } from '../../support/sandbox/sandbox.js';
import { runEveryStepTwice, type StepsRunTwice } from '../../support/sandbox/twice.js';

const isRoot = process.getuid?.() === 0;
const STEPS = ['base', 'bundle', 'data-volume', 'kernel', 'firewall', 'k3s', 'helm', 'charts', 'version', 'generalize'];
const IMAGE_ARCHIVE = '/var/lib/rancher/k3s/agent/images/kiln-image-docker.io_kiln_hello_1.0.tar';

describe.skipIf(!isRoot)('provisioning from an offline bundle with no network', () => {
  let dir: string;
  let plan: Plan;
  let made: CreatedBundle;
  let hello: PushedImage;
  let caPem: string;
  let sandbox: Sandbox;
  let beforeGeneralize: Sandbox;
  let firstRuns: StepsRunTwice['firstRuns'];
  let secondRuns: StepsRunTwice['secondRuns'];
  let manifests: StepsRunTwice['manifests'];
  // No network at all: every artifact comes from the bundle. mountAll: the machine's mounts are there, as on the build VM.
  const runOptions = (): RunOptions => ({ network: 'none', mountAll: true });
  const run = (sb: Sandbox, step: ProvisionStep, extraEnv?: Record<string, string>, after?: string) =>
    sb.runStep(step, { ...runOptions(), ...(extraEnv ? { extraEnv } : {}), ...(after ? { after } : {}) });

  beforeAll(async () => {
    const rootfs = await provisionRootfs();
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-offline-'));
    const artifacts = await startArtifacts();
    const registry = await startRegistry();
    try {
      hello = await registry.push('kiln/hello', '1.0');
      caPem = await readFile(registry.caFile, 'utf8');
      const definition = await airgapDefinition(dir, registry, ['kiln/hello:1.0']);
      const loaded = await loadDefinition(definition);
      const online = resolve(loaded, 'local', 'S', AIRGAP_VERSION, { runId: 'roffline01', mirrors: artifacts.mirrors() });
      made = await createBundle({ plan: online, output: path.join(dir, 'bundle.tar'), cacheDir: path.join(dir, 'cache') });
      // The plan still names the mirrors: nothing may be fetched from them, and nothing could be.
      plan = resolve(loaded, 'local', 'S', AIRGAP_VERSION, { runId: 'roffline01', mirrors: artifacts.mirrors(), bundle: await verifyBundle(made.path) });
    } finally {
      await registry.stop();
      await artifacts.close();
    }
    sandbox = await Sandbox.create(path.join(dir, 'vm'), rootfs);
    ({ firstRuns, secondRuns, manifests, beforeGeneralize } = await runEveryStepTwice(sandbox, plan.provision, { workDir: dir, paths: PROVISIONED_PATHS, runOptions }));
  }, 1_800_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const artifact = (p: string) => made.manifest.artifacts.find((a) => a.path === p);

  it('runs the bundle step after base, and every artifact step reads the bundle', () => {
    expect([...firstRuns.keys()]).toEqual(STEPS);
    expect(firstRuns.get('bundle')).toMatch(/bundle verified: 5 artifacts match its manifest \(sha256 [a-f0-9]{64}\)/);
    // The sandbox uploads a step's files before each run, so the second run unpacks a new upload.
    expect(secondRuns.get('bundle')).toMatch(/bundle verified: 5 artifacts match its manifest/);
    expect(firstRuns.get('k3s')).toContain('K3s v1.30.2+k3s1 from the offline bundle');
    expect(firstRuns.get('charts')).toContain('image kiln/hello:1.0 (' + hello.amd64.manifest + ') from the offline bundle saved as ' + IMAGE_ARCHIVE);
    for (const id of ['k3s', 'helm', 'charts']) expect(stepOf(plan, id).env.KILN_BUNDLE_DIR).toBe('/var/tmp/kiln-build/bundle');
  });

  it.each(STEPS)('step %s changes nothing when run a second time', (id) => {
    const [first, second] = manifests.get(id) ?? ['', ''];
    expect(first.split('\n').length).toBeGreaterThan(100);
    expect(second).toBe(first);
  });

  it('installs K3s, its airgap images, Helm and the chart from the bundle', async () => {
    const sha = (p: string) => sandbox.check(`sha256sum ${p} | cut -c1-64`);
    expect(await sha('/usr/local/bin/k3s')).toBe(`${artifact('k3s/v1.30.2+k3s1/k3s')?.sha256}\n`);
    expect(await sha('/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst')).toBe(`${artifact('k3s/v1.30.2+k3s1/k3s-airgap-images-amd64.tar.zst')?.sha256}\n`);
    expect(await sandbox.check('helm version --template "{{.Version}}"')).toBe('v3.15.2');
    expect((await sandbox.check('cat /opt/kiln/charts.tsv')).split('\t')).toEqual(['gitea', 'gitea', '10.1.4', 'gitea', '/opt/kiln/charts/gitea-10.1.4.tgz', `${artifact('charts/gitea-10.1.4.tgz')?.sha256}\n`]);
  });

  it('puts the image archive from the bundle where K3s imports it, recorded with its manifest digest', async () => {
    const bundled = artifact('images/docker.io_kiln_hello_1.0.tar');
    expect(await sandbox.check('cat /opt/kiln/images.tsv')).toBe(`kiln/hello:1.0\t${hello.amd64.manifest}\t${IMAGE_ARCHIVE}\t${bundled?.sha256}\n`);
    const boot = await beforeGeneralize.run(['/usr/local/lib/kiln/kiln-boot.sh'], { mountAll: true, network: 'none' });
    expect(boot.exitCode, boot.all).toBe(0);
    const imported = (await beforeGeneralize.standinLog()).filter((e) => e.event === 'images-imported').at(-1) as { archives: { file: string; format: string; sha256: string }[] };
    expect(imported.archives.map((a) => [a.file, a.format, a.sha256])).toContainEqual([IMAGE_ARCHIVE, 'oci', bundled?.sha256]);
  });

  it('writes registries.yaml mirroring the public registries to the internal one, trusting its CA', async () => {
    const registries = parse(await sandbox.check('cat /etc/rancher/k3s/registries.yaml')) as { mirrors: Record<string, { endpoint: string[] }>; configs: Record<string, unknown> };
    const endpoint = (await readFile(path.join(dir, 'airgap.yaml'), 'utf8')).match(/endpoint: (https:\/\/127\.0\.0\.1:\d+)/)?.[1] ?? '';
    expect(Object.keys(registries.mirrors).sort()).toEqual(['docker.io', 'ghcr.io', 'quay.io', 'registry.k8s.io']);
    for (const mirror of Object.values(registries.mirrors)) expect(mirror.endpoint).toEqual([endpoint]);
    expect(registries.configs).toEqual({ [new URL(endpoint).host]: { tls: { ca_file: '/etc/rancher/k3s/registry-ca.pem' } } });
    expect(await sandbox.check('cat /etc/rancher/k3s/registry-ca.pem')).toBe(caPem);
    expect(await sandbox.check('stat -c %a /etc/rancher/k3s/registries.yaml')).toBe('600\n');
    // kiln validate's checks of them pass on this root.
    const checks = plan.checks.filter((c) => c.name.startsWith('registr'));
    expect(checks).toHaveLength(2);
    for (const check of checks) expect((await sandbox.check(check.command)).trim()).toBe(check.expect ?? '');
  });

  it('leaves no bundle in the image: generalize removes the staging directory', async () => {
    expect(await sandbox.check('[ -e /var/tmp/kiln-build ] && echo present || echo gone')).toBe('gone\n');
  });

  describe('the bundle step run again, and a bundle damaged on its way to the VM', () => {
    let vm: Sandbox;
    beforeAll(async () => {
      vm = await beforeGeneralize.clone(path.join(dir, 'damaged'));
    }, 300_000);

    it('only checks its marker when run again with no new upload (a retried step)', async () => {
      const result = await run(vm, { ...stepOf(plan, 'bundle'), files: [] });
      expect(result.exitCode, result.all).toBe(0);
      expect(result.all).toContain('the bundle in /var/tmp/kiln-build/bundle is unpacked and verified already');
    });

    it('is refused by the bundle step, naming the artifact', async () => {
      const damaged = path.join(dir, 'damaged.tar');
      await copyFile(made.path, damaged);
      const size = (await readFile(damaged)).length;
      const handle = await open(damaged, 'r+');
      // The last artifact (the image archive) is padded to 512 bytes before tar's two zero blocks: change its last byte.
      const last = artifact('images/docker.io_kiln_hello_1.0.tar')?.size ?? 0;
      const at = size - 1024 - Math.ceil(last / 512) * 512 + last - 1;
      const byte = Buffer.alloc(1);
      await handle.read(byte, 0, 1, at);
      await handle.write(Buffer.from([(byte[0] ?? 0) ^ 1]), 0, 1, at);
      await handle.close();
      const step = stepOf(plan, 'bundle');
      const result = await run(vm, { ...step, files: step.files.map((f) => ({ ...f, source: damaged })) });
      expect(result.exitCode).toBe(1);
      expect(result.all).toMatch(/checksum mismatch for artifact images\/docker\.io_kiln_hello_1\.0\.tar \(image docker\.io\/kiln\/hello:1\.0\): expected sha256 [a-f0-9]{64}, got [a-f0-9]{64}/);
    });

    it('is refused when its manifest is not the one kiln verified', async () => {
      const other = createHash('sha256').update('another manifest').digest('hex');
      const result = await run(vm, stepOf(plan, 'bundle'), { KILN_BUNDLE_MANIFEST_SHA256: other });
      expect(result.exitCode).toBe(1);
      expect(result.all).toMatch(new RegExp(`the bundle's manifest has sha256 [a-f0-9]{64}, not the ${other} kiln verified before the upload`));
    });
  });
});
