/**
 * The stand-in artifacts and the server that hands them to test VMs: release layouts with checksum
 * files that match, a Helm repository the stand-in helm (and real Helm) can pull from, registry
 * endpoints, and the failure switches later tests rely on. The stand-in helm runs on the host here
 * with its log, cache and destination in a temporary directory.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactSpec, startArtifacts, TEST_IMAGE, type ArtifactFixture } from '../../support/provision-fixture.js';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe('stand-in artifacts and the artifact server', () => {
  let artifacts: ArtifactFixture;
  let dir: string;
  const get = (p: string, headers: Record<string, string> = {}) => fetch(`${artifacts.server.url}${p}`, { headers });

  beforeAll(async () => {
    artifacts = await startArtifacts();
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-artifacts-test-'));
  });
  afterAll(async () => {
    await artifacts?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('covers the K3s, Helm and chart versions of every definition in images/', async () => {
    const spec = await artifactSpec();
    expect(spec.k3s).toEqual(['v1.29.6+k3s2', 'v1.30.2+k3s1']);
    expect(spec.helm).toEqual(['v3.14.4', 'v3.15.2']);
    expect(spec.charts.find((c) => c.name === 'gitea')?.versions).toEqual(['10.1.4']);
    expect(spec.charts.find((c) => c.name === 'sourcegraph')?.versions).toEqual(['5.2.0', '5.9.0', '5.10.0']);
  });

  it('serves K3s in the release layout, "+" encoded as %2B, with a matching sha256sum file', async () => {
    const base = '/k3s/v1.29.6%2Bk3s2';
    const sums = await (await get(`${base}/sha256sum-amd64.txt`)).text();
    const binary = Buffer.from(await (await get(`${base}/k3s`)).arrayBuffer());
    const airgap = Buffer.from(await (await get(`${base}/k3s-airgap-images-amd64.tar.zst`)).arrayBuffer());
    expect(sums).toBe(`${sha256(binary)}  k3s\n${sha256(airgap)}  k3s-airgap-images-amd64.tar.zst\n`);
    expect(binary.toString()).toContain("STANDIN_VERSION='v1.29.6+k3s2'");
    const listing = await execa('bash', ['-c', 'zstd -dc | tar -t'], { input: airgap });
    expect(listing.stdout.split('\n').sort()).toEqual(expect.arrayContaining(['index.json', 'manifest.json', 'oci-layout']));
  });

  it('serves Helm as the release tarball and its .sha256sum', async () => {
    const name = 'helm-v3.14.4-linux-amd64.tar.gz';
    const tarball = Buffer.from(await (await get(`/helm/${name}`)).arrayBuffer());
    expect(await (await get(`/helm/${name}.sha256sum`)).text()).toBe(`${sha256(tarball)}  ${name}\n`);
    const listing = await execa('tar', ['-tz'], { input: tarball });
    expect(listing.stdout.split('\n').sort()).toEqual(['linux-amd64/', 'linux-amd64/LICENSE', 'linux-amd64/README.md', 'linux-amd64/helm']);
    const version = await execa('bash', ['-c', 'tar -xzO linux-amd64/helm | bash -s version --short'], { input: tarball, env: { KILN_STANDIN_LOG: path.join(dir, 'log.jsonl') } });
    expect(version.stdout).toMatch(/^v3\.14\.4\+g[0-9a-f]{7}$/);
  });

  it('serves a Helm repository whose digests match, and the stand-in helm pulls from it', async () => {
    const index = await (await get('/charts/index.yaml')).text();
    const chart = Buffer.from(await (await get('/charts/sourcegraph-5.10.0.tgz')).arrayBuffer());
    expect(index).toContain(`    digest: ${sha256(chart)}\n    name: sourcegraph\n    type: application\n    urls:\n    - sourcegraph-5.10.0.tgz\n    version: 5.10.0`);
    const files = (await execa('tar', ['-tz'], { input: chart })).stdout.split('\n').sort();
    expect(files).toEqual(['sourcegraph/', 'sourcegraph/Chart.yaml', 'sourcegraph/templates/', 'sourcegraph/templates/configmap.yaml', 'sourcegraph/values.yaml']);

    const helm = path.join(dir, 'helm');
    await execa('bash', ['-c', 'tar -xzO linux-amd64/helm > "$1" && chmod +x "$1"', 'x', helm], { input: Buffer.from(await (await get('/helm/helm-v3.14.4-linux-amd64.tar.gz')).arrayBuffer()) });
    const env = { KILN_STANDIN_LOG: path.join(dir, 'log.jsonl'), HELM_CACHE_HOME: path.join(dir, 'cache'), HOME: dir, PATH: process.env.PATH ?? '/usr/bin:/bin' };
    const pulled = await execa(helm, ['pull', 'sourcegraph', '--repo', `${artifacts.server.url}/charts`, '--version', '5.10.0', '-d', path.join(dir, 'out')], { env, reject: false });
    expect(pulled.exitCode, pulled.stderr).toBe(0);
    expect(sha256(await readFile(path.join(dir, 'out', 'sourcegraph-5.10.0.tgz')))).toBe(sha256(chart));
    const missing = await execa(helm, ['pull', 'sourcegraph', '--repo', `${artifacts.server.url}/charts`, '--version', '9.9.9', '-d', path.join(dir, 'out')], { env, reject: false });
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain('chart "sourcegraph" version "9.9.9" not found');
    const log = (await readFile(env.KILN_STANDIN_LOG, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { tool: string; event: string; version?: string });
    expect(log.filter((e) => e.event === 'pull').map((e) => e.version)).toEqual(['5.10.0', '9.9.9']);
  });

  it('answers the registry API, with a bearer-token challenge and content digests', async () => {
    const image = artifacts.built.images[TEST_IMAGE];
    const unauthorized = await get('/v2/kiln/hello/manifests/1.0');
    expect(unauthorized.status).toBe(401);
    const challenge = unauthorized.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/token",service="kiln-standin-registry",scope="repository:kiln\/hello:pull"$/);
    const { token } = (await (await get('/token?service=x&scope=y')).json()) as { token: string };
    const manifest = await get('/v2/kiln/hello/manifests/1.0', { Authorization: `Bearer ${token}` });
    const body = Buffer.from(await manifest.arrayBuffer());
    expect(manifest.headers.get('docker-content-digest')).toBe(image?.indexDigest);
    expect(`sha256:${sha256(body)}`).toBe(image?.indexDigest);
    expect(manifest.headers.get('content-type')).toBe('application/vnd.oci.image.index.v1+json');
    expect((await get(`/v2/kiln/hello/blobs/${image?.layerDigest}`, { Authorization: `Bearer ${token}` })).status).toBe(200);
  });

  it('switches: wrong checksum, cut download, HTTP status', async () => {
    const good = await (await get('/helm/helm-v3.14.4-linux-amd64.tar.gz.sha256sum')).text();
    artifacts.server.setFault(/\.sha256sum$/, { kind: 'wrong-checksum' });
    const wrong = await (await get('/helm/helm-v3.14.4-linux-amd64.tar.gz.sha256sum')).text();
    expect(wrong).not.toBe(good);
    expect(wrong).toMatch(/^[a-f0-9]{64} {2}helm-v3\.14\.4-linux-amd64\.tar\.gz\n$/);

    artifacts.server.setFault('/k3s/v1.29.6+k3s2/k3s', { kind: 'cut', afterBytes: 100 });
    const cut = await execa('curl', ['-sS', '-o', '/dev/null', `${artifacts.server.url}/k3s/v1.29.6%2Bk3s2/k3s`], { reject: false });
    expect(cut.exitCode).toBe(18);

    artifacts.server.setFault('/charts/index.yaml', { kind: 'status', status: 503 });
    expect((await get('/charts/index.yaml')).status).toBe(503);
    artifacts.server.clearFaults();
    expect((await get('/charts/index.yaml')).status).toBe(200);
    expect(artifacts.server.requests.some((r) => r.fault === 'cut' && r.bytes === 100)).toBe(true);
  });
});
