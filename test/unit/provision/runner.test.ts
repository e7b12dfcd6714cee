/**
 * How the provisioner stages an offline build: the bundle is not copied into the staging tree but
 * sent on its own (uploadFile: resumable, sha256-checked on arrival), once, after the tree and
 * before the first step. The session is a recording stand-in; nothing runs on this host.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundlePaths, K3S_AIRGAP_IMAGES, type BundleManifest } from '../../../src/bundle/manifest.js';
import { loadDefinition } from '../../../src/definition/load.js';
import type { Plan } from '../../../src/definition/plan.js';
import { resolve } from '../../../src/definition/resolve.js';
import { runProvisioning } from '../../../src/provision/runner.js';
import type { SshSession } from '../../../src/ssh/index.js';

describe('staging an offline build', () => {
  let dir: string;
  let plan: Plan;
  const calls: string[] = [];
  let tree: string[] = [];

  const session = {
    exec: async (command: string) => {
      calls.push(`exec ${command.split('\n')[0] ?? ''}`);
      return { code: 0, signal: null, stdoutTail: 'status: done', stderrTail: '', tail: [] };
    },
    run: async (command: string) => {
      calls.push(`run ${command}`);
      return { code: 0, signal: null, stdoutTail: '', stderrTail: '', tail: [] };
    },
    uploadTree: async (local: string, remote: string) => {
      tree = (await readdir(local, { recursive: true })).map(String).sort();
      calls.push(`tree ${remote}`);
      return { bytes: 1, durationMs: 1 };
    },
    uploadFile: async (local: string, remote: string, options: { sudo?: boolean; mode?: string; timeoutMs?: number }) => {
      calls.push(`file ${local} -> ${remote} mode ${options.mode} sudo ${options.sudo} timeout ${options.timeoutMs}`);
      return { bytes: 7, sha256: 'f'.repeat(64), durationMs: 1, attempts: 1, startOffsets: [0], transferMs: 1, verifyMs: 0 };
    },
  } as unknown as SshSession;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-runner-'));
    const bundleFile = path.join(dir, 'bundle.tar');
    await writeFile(bundleFile, 'bundle!');
    const loaded = await loadDefinition('images/sourcegraph.yaml');
    const online = resolve(loaded, 'local', 'xs', '5.2.0', { runId: 'rrunner001' });
    const { k3s, helm, charts } = online.software;
    const paths = [bundlePaths.k3s(k3s.version, 'k3s'), bundlePaths.k3s(k3s.version, K3S_AIRGAP_IMAGES), bundlePaths.helm(helm.version), ...charts.map((c) => bundlePaths.chart(c.chart, c.version))];
    const kinds = ['k3s-binary', 'k3s-airgap-images', 'helm-archive', 'chart', 'chart'] as const;
    const manifest: BundleManifest = {
      format: 1,
      kind: 'kiln-bundle',
      definition: { name: 'sourcegraph', sha256: loaded.sha256 },
      version: '5.2.0',
      artifacts: paths.map((p, i) => ({ path: p, kind: kinds[i] ?? 'chart', name: p, version: '1', size: 1, sha256: 'a'.repeat(64), source: 'x', verifiedBy: 'x' })),
    };
    plan = resolve(loaded, 'local', 'xs', '5.2.0', { runId: 'rrunner001', bundle: { path: bundleFile, manifest, manifestSha256: 'b'.repeat(64) } });
    await runProvisioning({ session, steps: plan.provision, runtimeEnv: {}, log: () => {} });
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('uploads the bundle on its own, once, after the staging tree and before the first step', () => {
    const tree = calls.indexOf('tree /var/tmp/kiln-build');
    const file = calls.findIndex((c) => c.startsWith('file '));
    const firstStep = calls.findIndex((c) => c.startsWith('exec bash /var/tmp/kiln-build/provision/'));
    expect(calls.filter((c) => c.startsWith('file '))).toEqual([`file ${path.join(dir, 'bundle.tar')} -> /var/tmp/kiln-build/bundle.tar mode 0600 sudo true timeout 1800000`]);
    expect(tree).toBeGreaterThan(-1);
    expect(file).toBeGreaterThan(tree);
    expect(firstStep).toBeGreaterThan(file);
    expect(calls[firstStep]).toBe('exec bash /var/tmp/kiln-build/provision/base.sh');
    expect(calls[firstStep + 1]).toBe('exec bash /var/tmp/kiln-build/provision/bundle.sh');
  });

  it('keeps the bundle out of the staging tree, with the scripts and the other planned files in it', () => {
    expect(tree).not.toContain('bundle.tar');
    expect(tree).toContain(path.join('provision', 'bundle.sh'));
    expect(tree).toContain(path.join('files', 'charts.tsv'));
  });

  it('gives the offline steps their environment', () => {
    const env = (id: string) => plan.provision.find((s) => s.id === id)?.env ?? {};
    expect(env('bundle')).toMatchObject({ KILN_BUNDLE_FILE: '/var/tmp/kiln-build/bundle.tar', KILN_BUNDLE_DIR: '/var/tmp/kiln-build/bundle', KILN_BUNDLE_MANIFEST_SHA256: 'b'.repeat(64) });
    expect(env('base').KILN_OFFLINE).toBe('true');
    for (const id of ['k3s', 'helm', 'charts']) expect(env(id).KILN_BUNDLE_DIR).toBe('/var/tmp/kiln-build/bundle');
    for (const id of ['data-volume', 'kernel', 'firewall', 'version', 'generalize']) expect(env(id).KILN_BUNDLE_DIR).toBeUndefined();
  });
});
