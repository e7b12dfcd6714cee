/**
 * `kiln bundle` against a local HTTP server standing in for the K3s and Helm release sites and the
 * chart repository (test/support/artifact-server.ts, serving the stand-ins): what the bundle holds,
 * reuse of the cache on a second run, and refusals: a wrong published checksum (refused, naming the
 * artifact), a download cut mid-body (resumed with a Range request, or restarted where the server
 * ignores ranges), a download that always breaks, and a 404.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBundle, verifyBundle } from '../../../src/bundle/index.js';
import type { CreateBundleOptions } from '../../../src/bundle/create.js';
import { KilnError } from '../../../src/core/errors.js';
import { planFor, startArtifacts, type ArtifactFixture } from '../../support/provision-fixture.js';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const K3S = 'v1.29.6+k3s2';

describe('kiln bundle from the release sites and a chart repository', () => {
  let artifacts: ArtifactFixture;
  let dir: string;
  let options: (name: string, cache?: string) => CreateBundleOptions;
  const logs: string[] = [];

  beforeAll(async () => {
    artifacts = await startArtifacts();
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-bundle-test-'));
    const plan = await planFor('images/sourcegraph.yaml', 'local', 'xs', '5.2.0', artifacts.mirrors());
    options = (name, cache = 'cache') => ({
      plan,
      output: path.join(dir, name),
      cacheDir: path.join(dir, cache),
      log: (line) => logs.push(line),
      download: { retryDelayMs: 20, timeoutMs: 5_000, stallMs: 5_000 },
    });
  });
  afterAll(async () => {
    await artifacts?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const fileRequests = (p: string) => artifacts.server.requests.filter((r) => r.path === p);

  it('downloads every artifact of the plan, verified, into one archive with a manifest', async () => {
    const made = await createBundle(options('bundle.tar'));
    const built = artifacts.built;
    expect(made.manifest.artifacts.map((a) => [a.path, a.kind, a.sha256])).toEqual([
      [`k3s/${K3S}/k3s`, 'k3s-binary', built.k3s[K3S]?.binarySha256],
      [`k3s/${K3S}/k3s-airgap-images-amd64.tar.zst`, 'k3s-airgap-images', built.k3s[K3S]?.airgapSha256],
      ['helm/helm-v3.14.4-linux-amd64.tar.gz', 'helm-archive', built.helm['v3.14.4']?.archiveSha256],
      ['charts/sourcegraph-5.2.0.tgz', 'chart', built.charts['sourcegraph-5.2.0']?.sha256],
      ['charts/sourcegraph-executor-k8s-5.2.0.tgz', 'chart', built.charts['sourcegraph-executor-k8s-5.2.0']?.sha256],
    ]);
    expect(made.manifest).toMatchObject({ format: 1, kind: 'kiln-bundle', definition: { name: 'sourcegraph' }, version: '5.2.0' });
    expect(made.manifest.artifacts[0]).toMatchObject({ name: `K3s ${K3S} binary`, version: K3S, verifiedBy: `${artifacts.server.url}/k3s/v1.29.6%2Bk3s2/sha256sum-amd64.txt` });
    expect(made.manifest.artifacts[3]?.verifiedBy).toBe(`${artifacts.server.url}/charts/index.yaml digest`);
    expect(made).toMatchObject({ downloaded: 5, reused: 0 });

    // The archive: the manifest first, then each artifact byte for byte, with fixed owners and times.
    const listing = (await execa('tar', ['-tvf', made.path])).stdout.split('\n');
    expect(listing[0]).toMatch(/^-rw-r--r-- root\/root +\d+ 1970-01-01 00:00 kiln-bundle\.json$/);
    expect(listing).toHaveLength(6);
    const k3s = (await execa('tar', ['-xOf', made.path, `k3s/${K3S}/k3s`], { encoding: 'buffer', stripFinalNewline: false })).stdout;
    expect(sha256(Buffer.from(k3s))).toBe(built.k3s[K3S]?.binarySha256);
    expect(sha256(await readFile(made.path))).toBe(made.sha256);
    const verified = await verifyBundle(made.path);
    expect(verified.manifest).toEqual(made.manifest);
  });

  it('reuses what the cache holds verified: a second run downloads only the checksums, and writes the same bytes', async () => {
    const before = artifacts.server.requests.length;
    const first = await readFile(path.join(dir, 'bundle.tar'));
    const again = await createBundle(options('again.tar'));
    expect(again).toMatchObject({ downloaded: 0, reused: 5 });
    const fetched = artifacts.server.requests.slice(before).map((r) => r.path);
    expect(fetched.sort()).toEqual(['/charts/index.yaml', '/helm/helm-v3.14.4-linux-amd64.tar.gz.sha256sum', `/k3s/${K3S}/sha256sum-amd64.txt`]);
    expect(Buffer.compare(await readFile(again.path), first)).toBe(0);
  });

  it('refuses a K3s binary whose published checksum does not match, naming the artifact', async () => {
    artifacts.server.setFault(`/k3s/${K3S}/sha256sum-amd64.txt`, { kind: 'wrong-checksum' });
    try {
      const error = await createBundle(options('wrong.tar', 'cache-wrong')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(KilnError);
      expect((error as KilnError).code).toBe('INTEGRITY');
      expect((error as KilnError).message).toMatch(
        new RegExp(`^K3s v1\\.29\\.6\\+k3s2 binary \\(k3s/v1\\.29\\.6\\+k3s2/k3s\\): the download from http://127\\.0\\.0\\.1:\\d+/k3s/v1\\.29\\.6%2Bk3s2/k3s has sha256 ${artifacts.built.k3s[K3S]?.binarySha256}, but .*sha256sum-amd64\\.txt says [a-f0-9]{64}$`),
      );
      expect((error as KilnError).context.artifact).toBe(`k3s/${K3S}/k3s`);
    } finally {
      artifacts.server.clearFaults();
    }
    // Nothing unverified was kept: neither a bundle nor a cache entry.
    await expect(readFile(path.join(dir, 'wrong.tar'))).rejects.toThrow(/ENOENT/);
    await expect(readFile(path.join(dir, 'wrong.tar.part'))).rejects.toThrow(/ENOENT/);
    expect((await execa('find', [path.join(dir, 'cache-wrong', 'sha256'), '-type', 'f'])).stdout).toBe('');
  });

  it('refuses a chart whose archive does not match the repository index digest', async () => {
    artifacts.server.setFault('/charts/index.yaml', { kind: 'wrong-checksum' });
    try {
      await expect(createBundle(options('wrong-chart.tar', 'cache-chart'))).rejects.toThrow(/^chart sourcegraph 5\.2\.0 \(charts\/sourcegraph-5\.2\.0\.tgz\): the download from .* has sha256 [a-f0-9]{64}, but http:\/\/127\.0\.0\.1:\d+\/charts\/index\.yaml digest says/);
    } finally {
      artifacts.server.clearFaults();
    }
  });

  it('resumes a download cut in the middle of the body from the bytes it has (Range)', async () => {
    const url = `/k3s/${K3S}/k3s`;
    artifacts.server.setFault(url, { kind: 'cut', afterBytes: 5000, times: 1 });
    const before = fileRequests(url).length;
    try {
      const made = await createBundle(options('resumed.tar', 'cache-resume'));
      expect(made.manifest.artifacts[0]?.sha256).toBe(artifacts.built.k3s[K3S]?.binarySha256);
    } finally {
      artifacts.server.clearFaults();
    }
    const requests = fileRequests(url).slice(before);
    expect(requests.map((r) => [r.fault, r.rangeFrom, r.status])).toEqual([
      ['cut', undefined, 200],
      [undefined, 5000, 206],
    ]);
    expect(logs.some((l) => l.includes(`K3s ${K3S} binary: 12647 bytes, sha256 verified`) && l.includes('(2 attempts, resumed at byte 5000)'))).toBe(true);
  });

  it('starts over cleanly where the server ignores ranges', async () => {
    const url = '/helm/helm-v3.14.4-linux-amd64.tar.gz';
    artifacts.server.setFault(url, { kind: 'cut', afterBytes: 3000, times: 2, ignoreRange: true });
    const before = fileRequests(url).length;
    try {
      const made = await createBundle(options('restarted.tar', 'cache-restart'));
      expect(made.manifest.artifacts[2]?.sha256).toBe(artifacts.built.helm['v3.14.4']?.archiveSha256);
    } finally {
      artifacts.server.clearFaults();
    }
    // Each retry asked to resume, got the whole file (200) and wrote it from byte 0.
    expect(fileRequests(url).slice(before).map((r) => [r.fault, r.rangeFrom, r.status])).toEqual([
      ['cut', undefined, 200],
      ['cut', 3000, 200],
      [undefined, 3000, 200],
    ]);
  });

  it('gives up on a download that always breaks, after retrying with backoff until its deadline', async () => {
    artifacts.server.setFault('/charts/sourcegraph-5.2.0.tgz', { kind: 'cut', afterBytes: 100, ignoreRange: true });
    const started = Date.now();
    try {
      await expect(createBundle({ ...options('broken.tar', 'cache-broken'), download: { retryDelayMs: 50, timeoutMs: 1_000 } })).rejects.toThrow(
        /^download of http:\/\/127\.0\.0\.1:\d+\/charts\/sourcegraph-5\.2\.0\.tgz failed after \d+ attempts: (aborted|Premature close|the body ended)/,
      );
    } finally {
      artifacts.server.clearFaults();
    }
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(fileRequests('/charts/sourcegraph-5.2.0.tgz').filter((r) => r.fault === 'cut').length).toBeGreaterThan(2);
  });

  it('fails at once on a 404, naming the URL', async () => {
    artifacts.server.setFault('/helm/helm-v3.14.4-linux-amd64.tar.gz.sha256sum', { kind: 'status', status: 404 });
    const before = fileRequests('/helm/helm-v3.14.4-linux-amd64.tar.gz.sha256sum').length;
    try {
      await expect(createBundle(options('missing.tar'))).rejects.toThrow(/^download of http:\/\/127\.0\.0\.1:\d+\/helm\/helm-v3\.14\.4-linux-amd64\.tar\.gz\.sha256sum failed: HTTP 404$/);
    } finally {
      artifacts.server.clearFaults();
    }
    expect(fileRequests('/helm/helm-v3.14.4-linux-amd64.tar.gz.sha256sum').length - before).toBe(1);
  });

  it('runs as `kiln bundle` and `kiln bundle verify` from the command line', async () => {
    const out = path.join(dir, 'cli.tar');
    const mirrors = artifacts.mirrors();
    const env = { CI: 'true', KILN_CACHE_DIR: path.join(dir, 'cli-cache') };
    const made = await execa('node', ['bin/kiln.js', 'bundle', 'images/sourcegraph.yaml', '--version', '5.2.0', '-o', out, '--mirror', `k3s=${mirrors.k3s}`, '--mirror', `helm=${mirrors.helm}`, '--mirror', `charts=${mirrors.charts}`], { reject: false, env });
    expect(made.exitCode, made.stderr).toBe(0);
    expect(made.stdout).toMatch(new RegExp(`${out}: 5 artifacts, \\d+ bytes, sha256 ${sha256(await readFile(out))} \\(5 downloaded, 0 from the cache\\)`));
    const verified = await execa('node', ['bin/kiln.js', 'bundle', 'verify', out], { reject: false, env });
    expect(verified.exitCode, verified.stderr).toBe(0);
    expect(verified.stdout).toContain(`${out}: ok, 5 artifacts for sourcegraph 5.2.0, manifest sha256 `);
    const noVersion = await execa('node', ['bin/kiln.js', 'bundle', 'images/sourcegraph.yaml', '-o', out], { reject: false, env });
    expect(noVersion.exitCode).toBe(2);
    expect(noVersion.stderr).toContain('--version: required');
  });
});
