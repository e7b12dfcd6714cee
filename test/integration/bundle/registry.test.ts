/**
 * Container images in bundles, from a real registry: Debian's docker-registry on 127.0.0.1 with
 * TLS from a throwaway CA, standing in for the internal mirror a definition names
 * (k3s.registryMirror with its caFile), read by skopeo. Each image is bundled for linux/amd64 only,
 * named for containerd, reused from the cache on a second run; an unknown image and an untrusted
 * certificate are refused.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBundle, verifyBundle, type CreatedBundle } from '../../../src/bundle/index.js';
import type { Plan } from '../../../src/definition/plan.js';
import { AIRGAP_VERSION, airgapDefinition } from '../../support/bundle-fixture.js';
import { planFor, startArtifacts, type ArtifactFixture } from '../../support/provision-fixture.js';
import { startRegistry, type PushedImage, type TestRegistry } from '../../support/registry.js';

describe('kiln bundle with container images from a real registry', () => {
  let artifacts: ArtifactFixture;
  let registry: TestRegistry;
  let dir: string;
  let plan: Plan;
  let hello: PushedImage;
  let tools: PushedImage;
  let made: CreatedBundle;
  const logs: string[] = [];
  const bundle = (name: string, p: Plan = plan) => createBundle({ plan: p, output: path.join(dir, name), cacheDir: path.join(dir, 'cache'), log: (l) => logs.push(l) });
  const tarJson = async (archive: string, member: string) => JSON.parse((await execa('tar', ['-xOf', archive, member])).stdout) as Record<string, unknown>;

  beforeAll(async () => {
    artifacts = await startArtifacts();
    registry = await startRegistry();
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-bundle-registry-'));
    hello = await registry.push('kiln/hello', '1.0');
    tools = await registry.push('kiln/tools', '2.1');
    const images = ['kiln/hello:1.0', 'ghcr.io/kiln/tools:2.1', `docker.io/kiln/hello@${hello.indexDigest}`];
    plan = await planFor(await airgapDefinition(dir, registry, images), 'local', 'S', AIRGAP_VERSION, artifacts.mirrors());
    made = await bundle('bundle.tar');
  }, 240_000);
  afterAll(async () => {
    await registry?.stop();
    await artifacts?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('copies each image through the mirror, for linux/amd64, verified by its manifest digest', async () => {
    const images = made.manifest.artifacts.filter((a) => a.kind === 'image');
    expect(images.map((a) => [a.path, a.image?.name, a.image?.digest])).toEqual([
      ['images/docker.io_kiln_hello_1.0.tar', 'docker.io/kiln/hello:1.0', hello.amd64.manifest],
      ['images/ghcr.io_kiln_tools_2.1.tar', 'ghcr.io/kiln/tools:2.1', tools.amd64.manifest],
      [`images/docker.io_kiln_hello_${hello.indexDigest.replace(':', '_')}.tar`, `docker.io/kiln/hello@${hello.indexDigest}`, hello.amd64.manifest],
    ]);
    expect(images[0]).toMatchObject({ source: `docker://${registry.host}/kiln/hello@${hello.amd64.manifest}`, verifiedBy: `manifest digest ${hello.amd64.manifest}`, version: '1.0' });
    expect((await verifyBundle(made.path)).manifest).toEqual(made.manifest);

    // Not one arm64 blob was fetched; every amd64 blob was.
    const gets = registry.requests().filter((r) => r.startsWith('GET '));
    for (const digest of Object.values(hello.arm64)) expect(gets.some((r) => r.includes(digest))).toBe(false);
    for (const digest of [hello.amd64.config, hello.amd64.layer]) expect(gets).toContain(`GET /v2/kiln/hello/blobs/${digest}`);
  });

  it('writes an OCI archive K3s imports: one manifest, named for containerd, only its own blobs', async () => {
    const dest = path.join(dir, 'unpacked');
    await execa('mkdir', ['-p', dest]);
    await execa('tar', ['-xf', made.path, '-C', dest, 'images/docker.io_kiln_hello_1.0.tar']);
    const archive = path.join(dest, 'images/docker.io_kiln_hello_1.0.tar');
    const listing = (await execa('tar', ['-tf', archive])).stdout.split('\n').sort();
    expect(listing).toEqual(['blobs/sha256/' + hello.amd64.config.slice(7), 'blobs/sha256/' + hello.amd64.layer.slice(7), 'blobs/sha256/' + hello.amd64.manifest.slice(7), 'index.json', 'oci-layout'].sort());
    expect(await tarJson(archive, 'index.json')).toEqual({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: hello.amd64.manifest,
          size: expect.any(Number) as number,
          annotations: { 'io.containerd.image.name': 'docker.io/kiln/hello:1.0', 'org.opencontainers.image.ref.name': '1.0' },
        },
      ],
    });
    // Fixed times and owners, as the bundle itself.
    expect((await execa('tar', ['-tvf', archive])).stdout.split('\n').every((l) => l.includes('root/root') && l.includes('1970-01-01 00:00'))).toBe(true);
  });

  it('reuses the cached archives on a second run: only the tags are resolved again', async () => {
    const before = registry.requests().length;
    const again = await bundle('again.tar');
    expect(again.reused).toBe(7);
    expect(again.downloaded).toBe(0);
    const after = registry.requests().slice(before);
    expect(after.filter((r) => r.includes('/blobs/'))).toEqual([]);
    expect(after.filter((r) => r.includes('/manifests/')).length).toBeGreaterThan(0);
    expect(again.sha256).toBe(made.sha256);
  });

  it('refuses an image the registry does not have, naming it', async () => {
    const missing = structuredClone(plan);
    missing.software.charts[0]!.images = ['kiln/absent:9.9'];
    await expect(bundle('absent.tar', missing)).rejects.toThrow(/^resolve image docker\.io\/kiln\/absent:9\.9 \(from mirror 127\.0\.0\.1:\d+\) failed: .*(manifest unknown|not found)/is);
  });

  it('does not trust the mirror without its CA certificate', async () => {
    const untrusted = structuredClone(plan);
    const mirror = untrusted.software.registryMirror;
    if (!mirror) throw new Error('the fixture has a registry mirror');
    delete mirror.caFile;
    await expect(bundle('untrusted.tar', untrusted)).rejects.toThrow(/certificate signed by unknown authority/);
  });
});
