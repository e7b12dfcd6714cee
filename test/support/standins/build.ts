/**
 * Builds what the artifact server serves, in the real release layouts, from the stand-ins:
 *
 *   k3s/<version>/k3s                              the K3s stand-in, its version baked in
 *   k3s/<version>/k3s-airgap-images-amd64.tar.zst  an OCI archive (one tiny image), zstd
 *   k3s/<version>/sha256sum-amd64.txt              "<sha256>  <name>" for both
 *   helm/helm-<version>-linux-amd64.tar.gz         linux-amd64/{helm,LICENSE,README.md}
 *   helm/helm-<version>-linux-amd64.tar.gz.sha256sum
 *   charts/index.yaml, charts/<name>-<version>.tgz a Helm repository (charts packaged with tar)
 *   registry/...                                   images for the OCI distribution API (see
 *                                                  artifact-server.ts): blobs, media types, tags
 *
 * Every archive is made with tar/gzip/zstd with fixed times and owners, so checksums are stable.
 */
import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TAR_FLAGS = ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner'];
const CREATED = '2024-01-01T00:00:00Z';

export interface ArtifactSpec {
  k3s: string[];
  helm: string[];
  charts: { name: string; versions: string[] }[];
  /** Images on the test registry, "<repository>:<tag>" (e.g. "kiln/hello:1.0"): a linux/amd64 +
   * linux/arm64 index whose arm64 blobs are deliberately missing. */
  images?: string[];
}

export interface BuiltArtifacts {
  root: string;
  k3s: Record<string, { binarySha256: string; airgapSha256: string }>;
  helm: Record<string, { archiveSha256: string }>;
  /** Keyed "<name>-<version>". */
  charts: Record<string, { sha256: string; file: string }>;
  /** Keyed by "<repository>:<tag>": digest of the index and of the linux/amd64 manifest. */
  images: Record<string, { indexDigest: string; amd64Digest: string; layerDigest: string }>;
}

export const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/** The commit-like id a stand-in reports, derived from its version. */
const commitOf = (version: string): string => sha256(version).slice(0, 40);

export async function buildArtifacts(root: string, spec: ArtifactSpec): Promise<BuiltArtifacts> {
  const built: BuiltArtifacts = { root, k3s: {}, helm: {}, charts: {}, images: {} };
  const work = await mkdtemp(path.join(os.tmpdir(), 'kiln-artifacts-'));
  try {
    for (const version of spec.k3s) built.k3s[version] = await buildK3s(root, version, work);
    for (const version of spec.helm) built.helm[version] = await buildHelm(root, version, work);
    Object.assign(built.charts, await buildCharts(root, spec.charts, work));
    for (const image of spec.images ?? []) built.images[image] = await buildRegistryImage(root, image, work);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return built;
}

/** A stand-in script with its version and commit filled in. */
export async function standin(tool: 'k3s' | 'helm', version: string): Promise<string> {
  const template = await readFile(path.join(HERE, tool), 'utf8');
  return template.replaceAll('@STANDIN_VERSION@', version).replaceAll('@STANDIN_COMMIT@', commitOf(version));
}

async function tar(dir: string, out: string, entries: string[]): Promise<void> {
  await execa('tar', [...TAR_FLAGS, '-C', dir, '-cf', out, ...entries]);
}

async function gzip(file: string): Promise<string> {
  await execa('gzip', ['-n', '-f', file]);
  return `${file}.gz`;
}

async function buildK3s(root: string, version: string, work: string) {
  const dir = path.join(root, 'k3s', version);
  await mkdir(dir, { recursive: true });
  const binary = await standin('k3s', version);
  await writeFile(path.join(dir, 'k3s'), binary, { mode: 0o755 });

  // The airgap archive: an OCI layout with one small image K3s would need (the pause image).
  const layout = path.join(work, `airgap-${version}`);
  const image = await imageBlobs(work, 'docker.io/rancher/mirrored-pause:3.6', 'amd64');
  await writeLayout(layout, [{ ...image, name: 'docker.io/rancher/mirrored-pause:3.6', tag: '3.6' }]);
  const tarFile = path.join(work, `airgap-${version}.tar`);
  await tar(layout, tarFile, ['oci-layout', 'index.json', 'manifest.json', 'blobs']);
  const airgap = path.join(dir, 'k3s-airgap-images-amd64.tar.zst');
  await execa('zstd', ['-q', '-f', '-o', airgap, tarFile]);

  const binarySha256 = sha256(binary);
  const airgapSha256 = sha256(await readFile(airgap));
  await writeFile(path.join(dir, 'sha256sum-amd64.txt'), `${binarySha256}  k3s\n${airgapSha256}  k3s-airgap-images-amd64.tar.zst\n`);
  return { binarySha256, airgapSha256 };
}

async function buildHelm(root: string, version: string, work: string) {
  const dir = path.join(root, 'helm');
  await mkdir(dir, { recursive: true });
  const tree = path.join(work, `helm-${version}`);
  await mkdir(path.join(tree, 'linux-amd64'), { recursive: true });
  await writeFile(path.join(tree, 'linux-amd64', 'helm'), await standin('helm', version));
  await chmod(path.join(tree, 'linux-amd64', 'helm'), 0o755);
  await writeFile(path.join(tree, 'linux-amd64', 'LICENSE'), 'Apache License 2.0 (stand-in)\n');
  await writeFile(path.join(tree, 'linux-amd64', 'README.md'), `Helm ${version} stand-in for kiln tests\n`);
  const name = `helm-${version}-linux-amd64.tar.gz`;
  const tarFile = path.join(work, `helm-${version}-linux-amd64.tar`);
  await tar(tree, tarFile, ['linux-amd64']);
  const gz = await gzip(tarFile);
  await copyFile(gz, path.join(dir, name));
  const archiveSha256 = sha256(await readFile(gz));
  await writeFile(path.join(dir, `${name}.sha256sum`), `${archiveSha256}  ${name}\n`);
  return { archiveSha256 };
}

async function buildCharts(root: string, charts: ArtifactSpec['charts'], work: string) {
  const dir = path.join(root, 'charts');
  await mkdir(dir, { recursive: true });
  const result: BuiltArtifacts['charts'] = {};
  const entries: string[] = [];
  for (const chart of [...charts].sort((a, b) => a.name.localeCompare(b.name))) {
    entries.push(`  ${chart.name}:`);
    for (const version of chart.versions) {
      const tree = path.join(work, `chart-${chart.name}-${version}`);
      await mkdir(path.join(tree, chart.name, 'templates'), { recursive: true });
      await writeFile(
        path.join(tree, chart.name, 'Chart.yaml'),
        `apiVersion: v2\nname: ${chart.name}\nversion: ${version}\nappVersion: "${version}"\ndescription: Stand-in chart for kiln tests\ntype: application\n`,
      );
      await writeFile(path.join(tree, chart.name, 'values.yaml'), `standin: true\nreplicaCount: 1\n`);
      await writeFile(
        path.join(tree, chart.name, 'templates', 'configmap.yaml'),
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-standin\ndata:\n  version: {{ .Chart.Version | quote }}\n',
      );
      const file = `${chart.name}-${version}.tgz`;
      const tarFile = path.join(work, `${chart.name}-${version}.tar`);
      await tar(tree, tarFile, [chart.name]);
      const gz = await gzip(tarFile);
      await copyFile(gz, path.join(dir, file));
      const digest = sha256(await readFile(gz));
      result[`${chart.name}-${version}`] = { sha256: digest, file: path.join(dir, file) };
      entries.push(
        `  - apiVersion: v2`,
        `    appVersion: "${version}"`,
        `    created: "${CREATED}"`,
        `    description: Stand-in chart for kiln tests`,
        `    digest: ${digest}`,
        `    name: ${chart.name}`,
        `    type: application`,
        `    urls:`,
        `    - ${file}`,
        `    version: ${version}`,
      );
    }
  }
  await writeFile(path.join(dir, 'index.yaml'), `apiVersion: v1\nentries:\n${entries.join('\n')}\ngenerated: "${CREATED}"\n`);
  return result;
}

// ---------------------------------------------------------------------------------------------
// OCI images

export interface Blob {
  digest: string;
  mediaType: string;
  data: Buffer;
}

export interface ImageBlobs {
  manifest: Blob;
  config: Blob;
  layer: Blob;
}

export function blob(mediaType: string, data: Buffer | string): Blob {
  const buffer = Buffer.isBuffer(data) ? data : Buffer.from(data);
  return { digest: `sha256:${sha256(buffer)}`, mediaType, data: buffer };
}

/** One single-platform image: a gzipped layer holding /hello.txt, its config and manifest. */
export async function imageBlobs(work: string, name: string, arch: 'amd64' | 'arm64'): Promise<ImageBlobs> {
  const tree = await mkdtemp(path.join(work, 'layer-'));
  await writeFile(path.join(tree, 'hello.txt'), `stand-in image ${name} for linux/${arch}\n`);
  const layerTar = path.join(work, `${path.basename(tree)}.tar`);
  await tar(tree, layerTar, ['hello.txt']);
  const diffId = `sha256:${sha256(await readFile(layerTar))}`;
  const layer = blob('application/vnd.oci.image.layer.v1.tar+gzip', await readFile(await gzip(layerTar)));
  const config = blob(
    'application/vnd.oci.image.config.v1+json',
    JSON.stringify({ architecture: arch, os: 'linux', config: { Cmd: ['/hello'] }, rootfs: { type: 'layers', diff_ids: [diffId] }, created: CREATED }),
  );
  const manifest = blob(
    'application/vnd.oci.image.manifest.v1+json',
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: config.mediaType, digest: config.digest, size: config.data.length },
      layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.data.length }],
    }),
  );
  return { manifest, config, layer };
}

/** An OCI image layout (plus docker's manifest.json), as K3s imports from agent/images. */
async function writeLayout(dir: string, images: (ImageBlobs & { name: string; tag: string })[]): Promise<void> {
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const image of images) {
    for (const b of [image.manifest, image.config, image.layer]) await writeFile(path.join(dir, 'blobs', 'sha256', b.digest.slice(7)), b.data);
  }
  await writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}\n');
  await writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: images.map((i) => ({
        mediaType: i.manifest.mediaType,
        digest: i.manifest.digest,
        size: i.manifest.data.length,
        annotations: { 'io.containerd.image.name': i.name, 'org.opencontainers.image.ref.name': i.tag },
      })),
    }),
  );
  await writeFile(
    path.join(dir, 'manifest.json'),
    JSON.stringify(images.map((i) => ({ Config: `blobs/sha256/${i.config.digest.slice(7)}`, RepoTags: [i.name], Layers: [`blobs/sha256/${i.layer.digest.slice(7)}`] }))),
  );
}

/**
 * Stores an image for the registry endpoints: registry/blobs/<hex> (+ <hex>.type with the media
 * type) and registry/tags/<repository>/<tag> holding the index digest.
 */
async function buildRegistryImage(root: string, image: string, work: string) {
  const colon = image.lastIndexOf(':');
  const repository = image.slice(0, colon);
  const tag = image.slice(colon + 1);
  const amd64 = await imageBlobs(work, image, 'amd64');
  const arm64 = await imageBlobs(work, image, 'arm64');
  const index = blob(
    'application/vnd.oci.image.index.v1+json',
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: arm64.manifest.mediaType, digest: arm64.manifest.digest, size: arm64.manifest.data.length, platform: { os: 'linux', architecture: 'arm64' } },
        { mediaType: amd64.manifest.mediaType, digest: amd64.manifest.digest, size: amd64.manifest.data.length, platform: { os: 'linux', architecture: 'amd64' } },
      ],
    }),
  );
  const blobs = path.join(root, 'registry', 'blobs');
  await mkdir(blobs, { recursive: true });
  // arm64's manifest is there, its config and layer are not: pulling them would fail.
  for (const b of [index, amd64.manifest, amd64.config, amd64.layer, arm64.manifest]) {
    await writeFile(path.join(blobs, b.digest.slice(7)), b.data);
    await writeFile(path.join(blobs, `${b.digest.slice(7)}.type`), b.mediaType);
  }
  const tags = path.join(root, 'registry', 'tags', repository);
  await mkdir(tags, { recursive: true });
  await writeFile(path.join(tags, tag), index.digest);
  return { indexDigest: index.digest, amd64Digest: amd64.manifest.digest, layerDigest: amd64.layer.digest };
}
