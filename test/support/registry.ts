/**
 * A real container registry for tests: Debian's docker-registry (the distribution registry, v2)
 * serving HTTPS on 127.0.0.1 with a certificate from a throwaway CA made with openssl, its storage
 * in a temporary directory. `push` puts a small two-platform image there (linux/amd64 and
 * linux/arm64, an OCI index) with skopeo, from an OCI layout written here. Its access log tells
 * which requests reached it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { done, notYet, waitFor } from '../../src/core/wait.js';
import { freePort } from './sshd.js';
import { blob, imageBlobs, type Blob } from './standins/build.js';

export interface TestRegistry {
  /** 127.0.0.1:<port> */
  host: string;
  /** https://127.0.0.1:<port> */
  url: string;
  /** The CA certificate (PEM) the registry's certificate is signed with. */
  caFile: string;
  /** A directory with the CA as ca.crt, for skopeo's --cert-dir. */
  certDir: string;
  /** Copies a fresh two-platform image to <repository>:<tag>; returns the digests. */
  push(repository: string, tag: string): Promise<PushedImage>;
  /** The request lines of the access log so far ("GET /v2/kiln/hello/blobs/sha256:..."). */
  requests(): string[];
  stop(): Promise<void>;
}

export interface PushedImage {
  indexDigest: string;
  amd64: { manifest: string; config: string; layer: string };
  arm64: { manifest: string; config: string; layer: string };
}

export async function startRegistry(): Promise<TestRegistry> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-registry-'));
  const certDir = path.join(dir, 'certs');
  await mkdir(certDir);
  const caFile = path.join(dir, 'ca.pem');
  await makeCertificates(dir, caFile);
  await execa('cp', [caFile, path.join(certDir, 'ca.crt')]);
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = path.join(dir, 'config.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: info, formatter: text, accesslog: { disabled: false } }',
      `storage: { filesystem: { rootdirectory: ${path.join(dir, 'data')} }, delete: { enabled: true } }`,
      `http: { addr: "${host}", tls: { certificate: ${path.join(dir, 'server.pem')}, key: ${path.join(dir, 'server.key')} } }`,
      '',
    ].join('\n'),
  );
  let output = '';
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor(async () => ((await listening(port)) ? done(true) : child.exitCode === null ? notYet(output.slice(-200)) : done(false)), {
    what: `docker-registry on ${host}`,
    timeoutMs: 20_000,
    initialDelayMs: 50,
  });
  if (child.exitCode !== null) throw new Error(`docker-registry exited: ${output}`);

  return {
    host,
    url: `https://${host}`,
    caFile,
    certDir,
    push: (repository, tag) => push(dir, certDir, `${host}/${repository}`, tag),
    requests: () => [...output.matchAll(/"((?:GET|HEAD|PUT|POST|PATCH|DELETE) [^ "]+)/g)].map((m) => m[1] ?? ''),
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.end();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function makeCertificates(dir: string, caFile: string): Promise<void> {
  const file = (name: string) => path.join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await execa('openssl', ['req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', caFile, '-days', '2', '-subj', '/CN=kiln test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  await execa('openssl', ['req', ...ec, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=127.0.0.1']);
  await writeFile(file('server.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  await execa('openssl', ['x509', '-req', '-in', file('server.csr'), '-CA', caFile, '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('server.pem'), '-days', '2', '-extfile', file('server.ext')]);
}

/** An OCI layout holding a linux/amd64 + linux/arm64 index tagged `tag`, copied to the registry with skopeo. */
async function push(dir: string, certDir: string, repository: string, tag: string): Promise<PushedImage> {
  const work = await mkdtemp(path.join(dir, 'push-'));
  try {
    const amd64 = await imageBlobs(work, `${repository}:${tag}`, 'amd64');
    const arm64 = await imageBlobs(work, `${repository}:${tag}`, 'arm64');
    const entry = (b: Blob, architecture: string) => ({ mediaType: b.mediaType, digest: b.digest, size: b.data.length, platform: { os: 'linux', architecture } });
    const index = blob('application/vnd.oci.image.index.v1+json', JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [entry(arm64.manifest, 'arm64'), entry(amd64.manifest, 'amd64')] }));
    const layout = path.join(work, 'layout');
    await mkdir(path.join(layout, 'blobs', 'sha256'), { recursive: true });
    for (const b of [index, amd64.manifest, amd64.config, amd64.layer, arm64.manifest, arm64.config, arm64.layer]) {
      await writeFile(path.join(layout, 'blobs', 'sha256', b.digest.slice(7)), b.data);
    }
    await writeFile(path.join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(
      path.join(layout, 'index.json'),
      JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: index.mediaType, digest: index.digest, size: index.data.length, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
    );
    await execa('skopeo', ['copy', '--quiet', '--all', '--preserve-digests', '--dest-cert-dir', certDir, `oci:${layout}:${tag}`, `docker://${repository}:${tag}`]);
    const digests = (i: typeof amd64) => ({ manifest: i.manifest.digest, config: i.config.digest, layer: i.layer.digest });
    return { indexDigest: index.digest, amd64: digests(amd64), arm64: digests(arm64) };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
