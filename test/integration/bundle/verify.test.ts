/**
 * `kiln bundle verify` and the checks `kiln build --bundle` makes before it launches anything: a
 * bundle with one byte changed in one artifact is refused naming that artifact; so are a missing
 * artifact and a file the manifest does not list; a file that is no bundle is bad input; a bundle
 * that lacks what the build needs is bad input naming what it lacks.
 */
import { copyFile, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBundle, verifyBundle, type CreatedBundle } from '../../../src/bundle/index.js';
import { InputError, KilnError } from '../../../src/core/errors.js';
import { loadDefinition } from '../../../src/definition/load.js';
import { resolve } from '../../../src/definition/resolve.js';
import { planFor, startArtifacts, type ArtifactFixture } from '../../support/provision-fixture.js';

/** Byte offset of a member's data in a tar file (walks the 512-byte headers; names under 100 bytes). */
async function memberOffset(file: string, member: string): Promise<number> {
  const data = await readFile(file);
  for (let at = 0; at + 512 <= data.length; ) {
    const name = data.subarray(at, at + 100).toString('utf8').replace(/\0.*$/s, '');
    if (!name) break;
    const size = parseInt(data.subarray(at + 124, at + 136).toString('utf8').replace(/\0.*$/s, '').trim(), 8);
    if (name === member) return at + 512;
    at += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`${member} is not in ${file}`);
}

/** Flips the bits of one byte of a member, in place. */
async function flipByte(file: string, member: string, index: number): Promise<void> {
  const at = (await memberOffset(file, member)) + index;
  const handle = await open(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, at);
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    await handle.write(byte, 0, 1, at);
  } finally {
    await handle.close();
  }
}

const kiln = (...args: string[]) => execa('node', ['bin/kiln.js', ...args], { reject: false, env: { CI: 'true' } });

describe('verifying bundles', () => {
  let artifacts: ArtifactFixture;
  let dir: string;
  let made: CreatedBundle;
  const copy = async (name: string) => {
    const file = path.join(dir, name);
    await copyFile(made.path, file);
    return file;
  };
  const failure = async (file: string) => (await verifyBundle(file).catch((e: unknown) => e)) as KilnError;

  beforeAll(async () => {
    artifacts = await startArtifacts();
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-bundle-verify-'));
    const plan = await planFor('images/sourcegraph.yaml', 'local', 'xs', '5.2.0', artifacts.mirrors());
    made = await createBundle({ plan, output: path.join(dir, 'bundle.tar'), cacheDir: path.join(dir, 'cache') });
  });
  afterAll(async () => {
    await artifacts?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('accepts the bundle as written', async () => {
    const verified = await verifyBundle(made.path);
    expect(verified.manifest.artifacts).toHaveLength(5);
    expect(verified.manifestSha256).toMatch(/^[a-f0-9]{64}$/);
  });

  it('refuses a bundle with one byte changed in one artifact, naming the artifact', async () => {
    const file = await copy('tampered.tar');
    await flipByte(file, 'helm/helm-v3.14.4-linux-amd64.tar.gz', 1000);
    const error = await failure(file);
    expect(error).toBeInstanceOf(KilnError);
    expect(error.code).toBe('INTEGRITY');
    expect(error.message).toBe(
      `bundle ${file} is damaged or was tampered with:\n  artifact helm/helm-v3.14.4-linux-amd64.tar.gz (Helm v3.14.4 archive) has sha256 ${error.message.match(/has sha256 ([a-f0-9]{64})/)?.[1]}, the manifest says ${artifacts.built.helm['v3.14.4']?.archiveSha256}`,
    );
    expect(error.message).not.toContain('k3s/');
    const cli = await kiln('bundle', 'verify', file);
    expect(cli.exitCode).toBe(1);
    expect(cli.stderr).toContain('artifact helm/helm-v3.14.4-linux-amd64.tar.gz (Helm v3.14.4 archive) has sha256');
  });

  it('refuses a bundle with an artifact missing, or with a file its manifest does not list', async () => {
    // Unpacked, changed and packed again with GNU tar, the manifest first.
    const repack = async (name: string, change: (root: string) => Promise<unknown>) => {
      const root = await mkdtemp(path.join(dir, 'repack-'));
      await execa('tar', ['-xf', made.path, '-C', root]);
      await change(root);
      const files = (await execa('find', ['.', '-type', 'f', '!', '-name', 'kiln-bundle.json', '-printf', '%P\n'], { cwd: root })).stdout.split('\n').filter(Boolean).sort();
      const file = path.join(dir, name);
      await execa('tar', ['-cf', file, 'kiln-bundle.json', ...files], { cwd: root });
      return file;
    };
    const missing = await repack('missing.tar', (root) => rm(path.join(root, 'charts/sourcegraph-5.2.0.tgz')));
    expect((await failure(missing)).message).toContain('artifact charts/sourcegraph-5.2.0.tgz (chart sourcegraph 5.2.0) is missing');
    const extra = await repack('extra.tar', (root) => writeFile(path.join(root, 'charts/evil.tgz'), 'evil'));
    expect((await failure(extra)).message).toContain('charts/evil.tgz is in the archive but not in kiln-bundle.json');
    // The same bundle unchanged, packed by GNU tar, verifies: the format is plain tar.
    expect((await verifyBundle(await repack('repacked.tar', async () => {}))).manifest).toEqual(made.manifest);
  });

  it('takes a file that is no bundle as bad input (exit 2)', async () => {
    const truncated = path.join(dir, 'truncated.tar');
    await execa('head', ['-c', '1536', made.path], { stdout: { file: truncated } });
    expect(await failure(truncated)).toBeInstanceOf(InputError);
    const notTar = path.join(dir, 'not.tar');
    await execa('bash', ['-c', 'echo "hello" > "$1"', 'x', notTar]);
    const error = await failure(notTar);
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toMatch(/not\.tar: not a kiln bundle/);
    const cli = await kiln('bundle', 'verify', path.join(dir, 'absent.tar'));
    expect(cli.exitCode).toBe(2);
    expect(cli.stderr).toContain('absent.tar: cannot read the bundle: no such file');
  });

  it('takes a bundle that lacks what the build needs as bad input, naming what is missing', async () => {
    const loaded = await loadDefinition('images/sourcegraph.yaml');
    const bundle = await verifyBundle(made.path);
    // Covered: the plan gets the bundle step and no step keeps a download source it would use.
    const plan = resolve(loaded, 'aws', 'xs', '5.2.0', { runId: 'rbundle001', bundle });
    expect(plan.software.bundle).toEqual({ path: made.path, manifestSha256: bundle.manifestSha256 });
    expect(plan.provision.map((s) => s.id)).toEqual(['base', 'bundle', 'data-volume', 'kernel', 'firewall', 'k3s', 'helm', 'charts', 'version', 'generalize']);
    // Another product version needs other charts.
    const error = (() => {
      try {
        resolve(loaded, 'aws', 'xs', '5.9.0', { runId: 'rbundle001', bundle });
      } catch (err) {
        return err;
      }
    })() as InputError;
    expect(error).toBeInstanceOf(InputError);
    expect(error.issues).toEqual([
      {
        file: made.path,
        field: '--bundle',
        message:
          'the bundle (made for sourcegraph 5.2.0) lacks what this build of sourcegraph 5.9.0 needs: no chart sourcegraph 5.9.0 (charts/sourcegraph-5.9.0.tgz); no chart sourcegraph-executor-k8s 5.9.0 (charts/sourcegraph-executor-k8s-5.9.0.tgz); make one with: kiln bundle <definition> --version 5.9.0',
      },
    ]);
  });

  it('kiln build --bundle checks the bundle before it creates anything', async () => {
    const tampered = await copy('build-tampered.tar');
    await flipByte(tampered, `k3s/v1.29.6+k3s2/k3s`, 10);
    const state = path.join(dir, 'state');
    const env = { CI: 'true', KILN_STATE_DIR: state };
    const build = (bundle: string, version: string) =>
      execa('node', ['bin/kiln.js', 'build', 'images/sourcegraph.yaml', '-t', 'local', '-s', 'xs', '-V', version, '--bundle', bundle, '-o', path.join(dir, 'out')], { reject: false, env });
    const damaged = await build(tampered, '5.2.0');
    expect(damaged.exitCode).toBe(1);
    expect(damaged.stderr).toContain('artifact k3s/v1.29.6+k3s2/k3s (K3s v1.29.6+k3s2 binary) has sha256');
    const lacking = await build(made.path, '5.10.0');
    expect(lacking.exitCode).toBe(2);
    expect(lacking.stderr).toContain('--bundle: the bundle (made for sourcegraph 5.2.0) lacks what this build of sourcegraph 5.10.0 needs: no chart sourcegraph 5.10.0');
    // No run was started: nothing in the state directory.
    await expect(execa('ls', [path.join(state, 'runs')])).rejects.toThrow();
  });
});
