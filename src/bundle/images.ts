/**
 * Container images for a bundle, copied with skopeo (the containers/image registry client; kiln
 * speaks no registry protocol itself). For each reference: `skopeo inspect --raw` resolves the tag to
 * the linux/amd64 manifest digest; `skopeo copy` fetches exactly that digest (verifying every blob)
 * into an OCI image layout; kiln then names the image in the layout's index.json the way containerd
 * reads it (`io.containerd.image.name`, as provision/charts.sh does) and packs the layout into a tar
 * with fixed times, which K3s imports from its agent images directory.
 *
 * Images whose registry the definition's registry mirror covers are copied from the mirror (the
 * same repository path, as K3s pulls through registries.yaml), trusting the mirror's CA file.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { InputError, KilnError } from '../core/errors.js';
import type { RegistryMirrorPlan } from '../definition/plan.js';
import type { ImageRef } from './image-ref.js';
import { writeTar, type Digest } from './tar-files.js';

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
const PLATFORM = { os: 'linux', architecture: 'amd64' } as const;

export interface ImageSource {
  /** docker://<host>/<repository> without tag or digest. */
  location: string;
  /** skopeo TLS flags, without the src-/dest- prefix: tls-verify=false or cert-dir=... */
  tls: string[];
  /** "mirror <host>" or the registry, for messages. */
  via: string;
}

/** Where to copy an image from: the registry mirror when it covers the image's registry, else the registry. */
export async function imageSource(ref: ImageRef, mirror: RegistryMirrorPlan | undefined, scratch: string): Promise<ImageSource> {
  if (!mirror || !mirror.registries.includes(ref.registry)) {
    return { location: `docker://${ref.registry}/${ref.repository}`, tls: [], via: ref.registry };
  }
  const endpoint = new URL(mirror.endpoint);
  if (endpoint.pathname.replace(/\/+$/, '') !== '') {
    throw new InputError({ field: 'k3s.registryMirror.endpoint', message: `kiln bundle copies images from a mirror serving at the root of its host; found the path ${JSON.stringify(endpoint.pathname)}` });
  }
  const tls: string[] = [];
  if (endpoint.protocol === 'http:') tls.push('tls-verify=false');
  if (mirror.caFile) {
    // skopeo trusts the *.crt files of a certificate directory as CAs.
    const certs = path.join(scratch, 'certs');
    await mkdir(certs, { recursive: true });
    await copyFile(mirror.caFile, path.join(certs, 'ca.crt'));
    tls.push(`cert-dir=${certs}`);
  }
  return { location: `docker://${endpoint.host}/${ref.repository}`, tls, via: `mirror ${endpoint.host}` };
}

/** The digest of the linux/amd64 manifest the reference points to. */
export async function resolvePlatformDigest(ref: ImageRef, source: ImageSource, signal?: AbortSignal): Promise<string> {
  const at = ref.digest ? `@${ref.digest}` : `:${ref.tag ?? 'latest'}`;
  const raw = Buffer.from(await skopeo(['inspect', '--raw', '--retry-times', '3', ...flags(source.tls, ''), `${source.location}${at}`], `resolve image ${ref.name} (from ${source.via})`, signal));
  const digest = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
  if (ref.digest && digest !== ref.digest) throw new KilnError('INTEGRITY', `image ${ref.name}: the registry returned a manifest with digest ${digest}`, { image: ref.name });
  let manifest: { mediaType?: string; manifests?: { digest?: string; platform?: { os?: string; architecture?: string } }[] };
  try {
    manifest = JSON.parse(raw.toString('utf8')) as typeof manifest;
  } catch {
    throw new KilnError('DOWNLOAD', `image ${ref.name}: the registry's manifest is not JSON`, { image: ref.name });
  }
  if (!Array.isArray(manifest.manifests) && !INDEX_TYPES.has(manifest.mediaType ?? '')) return digest;
  const match = (manifest.manifests ?? []).find((m) => m.platform?.os === PLATFORM.os && m.platform.architecture === PLATFORM.architecture);
  if (!match?.digest || !/^sha256:[a-f0-9]{64}$/.test(match.digest)) throw new KilnError('DOWNLOAD', `image ${ref.name} has no linux/amd64 variant`, { image: ref.name });
  return match.digest;
}

/**
 * Copies the manifest `digest` of the image into an OCI archive at `out`, named `ref.name` for
 * containerd; checks that it is a linux/amd64 image.
 */
export async function copyImage(ref: ImageRef, digest: string, source: ImageSource, scratch: string, out: string, signal?: AbortSignal): Promise<Digest> {
  const layout = path.join(scratch, 'layout');
  await rm(layout, { recursive: true, force: true });
  const args = ['--override-os', PLATFORM.os, '--override-arch', PLATFORM.architecture, 'copy', '--quiet', '--retry-times', '3', ...flags(source.tls, 'src-')];
  await skopeo([...args, `${source.location}@${digest}`, `oci:${layout}:${ref.name}`], `copy image ${ref.name} (from ${source.via})`, signal);

  const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const [entry, ...others] = index.manifests;
  if (!entry || others.length > 0) throw new KilnError('INTERNAL', `skopeo wrote ${index.manifests.length} manifests for ${ref.name}, expected one`);
  await checkPlatform(layout, entry.digest, ref);
  entry.annotations = { 'io.containerd.image.name': ref.name, ...(ref.tag ? { 'org.opencontainers.image.ref.name': ref.tag } : {}) };
  await writeFile(path.join(layout, 'index.json'), JSON.stringify(index));

  const blobs = (await readdir(path.join(layout, 'blobs', 'sha256'))).sort();
  const { archive } = await writeTar(
    out,
    [
      { name: 'oci-layout', file: path.join(layout, 'oci-layout') },
      { name: 'index.json', file: path.join(layout, 'index.json') },
      ...blobs.map((blob) => ({ name: `blobs/sha256/${blob}`, file: path.join(layout, 'blobs', 'sha256', blob) })),
    ],
    signal,
  );
  await rm(layout, { recursive: true, force: true });
  return archive;
}

async function checkPlatform(layout: string, manifestDigest: string, ref: ImageRef): Promise<void> {
  const blob = (digest: string) => path.join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
  const manifest = JSON.parse(await readFile(blob(manifestDigest), 'utf8')) as { config?: { digest?: string } };
  const config = JSON.parse(await readFile(blob(manifest.config?.digest ?? ''), 'utf8')) as { os?: string; architecture?: string };
  if (config.os !== PLATFORM.os || config.architecture !== PLATFORM.architecture) {
    throw new KilnError('DOWNLOAD', `image ${ref.name} is for ${config.os ?? '?'}/${config.architecture ?? '?'}, not linux/amd64`, { image: ref.name });
  }
}

function flags(tls: string[], prefix: '' | 'src-'): string[] {
  return tls.map((flag) => `--${prefix}${flag}`);
}

async function skopeo(args: string[], what: string, signal?: AbortSignal): Promise<Uint8Array> {
  const result = await execa('skopeo', args, { encoding: 'buffer', stripFinalNewline: false, reject: false, ...(signal ? { cancelSignal: signal } : {}) });
  if (signal?.aborted) throw new KilnError('INTERRUPTED', `${what}: interrupted`);
  if (result.failed) {
    const reason = result.code === 'ENOENT' ? 'skopeo is not installed (scripts/install-system-deps.sh installs it)' : Buffer.from(result.stderr).toString('utf8').trim().split('\n').slice(-3).join('\n');
    throw new KilnError('DOWNLOAD', `${what} failed: ${reason || `skopeo exited with code ${result.exitCode ?? '?'}`}`);
  }
  return result.stdout;
}
