/**
 * The pure parts of bundles: image references normalized as containerd (and charts.sh) name them,
 * the published checksum formats, and whether a bundle covers a plan.
 */
import { describe, expect, it } from 'vitest';
import { chartEntry, parseSha256Sums, parseSingleSha256 } from '../../../src/bundle/checksums.js';
import { bundleGaps } from '../../../src/bundle/coverage.js';
import { imageFileName, parseImageRef } from '../../../src/bundle/image-ref.js';
import { bundlePaths, type BundleArtifact, type BundleManifest } from '../../../src/bundle/manifest.js';
import type { SoftwarePlan } from '../../../src/definition/plan.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('image references', () => {
  it.each([
    ['nginx:1.25', 'docker.io/library/nginx:1.25'],
    ['nginx', 'docker.io/library/nginx:latest'],
    ['org/app:2', 'docker.io/org/app:2'],
    ['docker.io/org/app:2', 'docker.io/org/app:2'],
    ['ghcr.io/org/app', 'ghcr.io/org/app:latest'],
    ['registry.example.com:5000/a/b/c:v1.0-rc.1', 'registry.example.com:5000/a/b/c:v1.0-rc.1'],
    ['localhost/app:1', 'localhost/app:1'],
    [`quay.io/org/app@${DIGEST}`, `quay.io/org/app@${DIGEST}`],
    [`quay.io/org/app:1.0@${DIGEST}`, `quay.io/org/app:1.0@${DIGEST}`],
  ])('%s is %s', (reference, name) => {
    expect(parseImageRef(reference).name).toBe(name);
  });

  it('names the archive as charts.sh names it', () => {
    expect(imageFileName(parseImageRef('registry.example.com:5000/a/b:1'))).toBe('registry.example.com_5000_a_b_1.tar');
    expect(bundlePaths.image(`app@${DIGEST}`)).toBe(`images/docker.io_library_app_sha256_${'ab'.repeat(32)}.tar`);
  });

  it.each(['Nginx:1', 'nginx:1;rm -rf /', 'app@sha256:abc', 'app:', 'a b'])('refuses %s', (reference) => {
    expect(() => parseImageRef(reference)).toThrow(/expected/);
  });
});

describe('published checksums', () => {
  it('reads sha256sum files, text and binary mode', () => {
    const sums = parseSha256Sums(`${'A'.repeat(64)}  k3s\n${'b'.repeat(64)} *k3s-airgap-images-amd64.tar.zst\nnot a line\n`);
    expect([...sums]).toEqual([
      ['k3s', 'a'.repeat(64)],
      ['k3s-airgap-images-amd64.tar.zst', 'b'.repeat(64)],
    ]);
    expect(parseSingleSha256(`${'c'.repeat(64)}\n`, 'x')).toBe('c'.repeat(64));
    expect(() => parseSingleSha256('<html>Not Found</html>', 'https://get.helm.sh/x.sha256sum')).toThrow('https://get.helm.sh/x.sha256sum holds no sha256');
  });

  const index = `apiVersion: v1
entries:
  app:
  - version: 1.0.0
    digest: ${'d'.repeat(64)}
    urls: [app-1.0.0.tgz]
  - version: 2.0.0
    urls: [https://cdn.example.com/app-2.0.0.tgz]
`;

  it('finds a chart in a repository index, resolving a relative URL against the repository', () => {
    expect(chartEntry(index, 'https://charts.example.com/stable/', 'app', '1.0.0')).toEqual({ digest: 'd'.repeat(64), url: 'https://charts.example.com/stable/app-1.0.0.tgz' });
  });

  it('refuses a chart the index lacks, or lists without a digest', () => {
    expect(() => chartEntry(index, 'https://charts.example.com', 'app', '3.0.0')).toThrow('chart app version 3.0.0 is not in https://charts.example.com/index.yaml');
    expect(() => chartEntry(index, 'https://charts.example.com', 'app', '2.0.0')).toThrow('lists no sha256 digest for chart app 2.0.0');
  });
});

describe('bundle coverage', () => {
  const software: SoftwarePlan = {
    k3s: { version: 'v1.29.6+k3s2', baseUrl: 'https://x' },
    helm: { version: 'v3.14.4', baseUrl: 'https://x', sha256: 'e'.repeat(64) },
    charts: [{ release: 'app', chart: 'app', version: '1.0.0', repository: 'https://x', namespace: 'default', images: ['nginx:1.25'], valuesFiles: [] }],
  };
  const artifact = (path: string, kind: BundleArtifact['kind'], sha256 = 'f'.repeat(64)): BundleArtifact => ({ path, kind, name: path, version: '1', size: 1, sha256, source: 'x', verifiedBy: 'x' });
  const manifest = (artifacts: BundleArtifact[]): BundleManifest => ({ format: 1, kind: 'kiln-bundle', definition: { name: 'd', sha256: '0'.repeat(64) }, version: '1.0.0', artifacts });
  const full = [
    artifact('k3s/v1.29.6+k3s2/k3s', 'k3s-binary'),
    artifact('k3s/v1.29.6+k3s2/k3s-airgap-images-amd64.tar.zst', 'k3s-airgap-images'),
    artifact('helm/helm-v3.14.4-linux-amd64.tar.gz', 'helm-archive', 'e'.repeat(64)),
    artifact('charts/app-1.0.0.tgz', 'chart'),
    artifact('images/docker.io_library_nginx_1.25.tar', 'image'),
  ];

  it('covers a plan when every artifact is there', () => {
    expect(bundleGaps(software, manifest(full))).toEqual([]);
  });

  it('names what is missing, and a pinned checksum the bundle does not match', () => {
    const partial = full.filter((a) => a.kind !== 'image' && a.kind !== 'k3s-airgap-images');
    partial[1] = artifact('helm/helm-v3.14.4-linux-amd64.tar.gz', 'helm-archive');
    expect(bundleGaps(software, manifest(partial))).toEqual([
      'no K3s v1.29.6+k3s2 airgap images (k3s/v1.29.6+k3s2/k3s-airgap-images-amd64.tar.zst)',
      `its Helm v3.14.4 has sha256 ${'f'.repeat(64)}, the definition pins ${'e'.repeat(64)}`,
      'no image nginx:1.25 (images/docker.io_library_nginx_1.25.tar)',
    ]);
  });
});
