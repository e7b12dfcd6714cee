/**
 * `kiln bundle`: every artifact a build of the plan would download (K3s binary and airgap images,
 * Helm, each chart at its pinned version, the charts' container images), verified, in one tar with
 * the manifest first. Artifacts come from the cache when it already holds them verified. The bundle
 * is written beside the output as `<output>.part` and renamed when complete; every file is hashed
 * again as it goes in, so a cache entry that rotted on disk is caught (and dropped) here.
 */
import { rename, rm } from 'node:fs/promises';
import { KilnError } from '../core/errors.js';
import type { Plan } from '../definition/plan.js';
import { ArtifactCache } from './cache.js';
import type { DownloadOptions } from './download.js';
import { fetchCharts, fetchHelm, fetchImages, fetchK3s, type FetchContext, type Fetched } from './fetch.js';
import { BUNDLE_FORMAT, MANIFEST_NAME, serializeManifest, type BundleManifest } from './manifest.js';
import { writeTar } from './tar-files.js';

export interface CreateBundleOptions {
  /** A plan of the definition and version to bundle (any target and size: the artifacts are the same). */
  plan: Plan;
  output: string;
  cacheDir: string;
  log?: (line: string) => void;
  signal?: AbortSignal;
  download?: Omit<DownloadOptions, 'signal' | 'log'>;
}

export interface CreatedBundle {
  path: string;
  manifest: BundleManifest;
  /** sha256 and size of the bundle file. */
  sha256: string;
  size: number;
  downloaded: number;
  reused: number;
}

export async function createBundle(options: CreateBundleOptions): Promise<CreatedBundle> {
  const { plan } = options;
  const log = options.log ?? (() => {});
  const cache = await ArtifactCache.open(options.cacheDir);
  const scratch = await cache.scratch();
  const ctx: FetchContext = { cache, scratch, log, signal: options.signal, download: options.download, stats: { downloaded: 0, reused: 0 } };
  const part = `${options.output}.part`;
  try {
    const { software } = plan;
    const fetched: Fetched[] = [
      ...(await fetchK3s(ctx, software.k3s)),
      await fetchHelm(ctx, software.helm),
      ...(await fetchCharts(ctx, software.charts)),
      ...(await fetchImages(ctx, software.charts, software.registryMirror)),
    ];
    const manifest: BundleManifest = {
      format: BUNDLE_FORMAT,
      kind: 'kiln-bundle',
      definition: { name: plan.definition.name, sha256: plan.definition.sha256 },
      version: plan.version,
      artifacts: fetched.map((f) => f.artifact),
    };
    log(`writing ${options.output}: ${fetched.length} artifacts`);
    const written = await writeTar(
      part,
      [{ name: MANIFEST_NAME, content: Buffer.from(serializeManifest(manifest)) }, ...fetched.map((f) => ({ name: f.artifact.path, file: f.file }))],
      options.signal,
    );
    for (const { artifact } of fetched) {
      const actual = written.entries.get(artifact.path);
      if (actual?.sha256 !== artifact.sha256 || actual.size !== artifact.size) {
        await cache.drop(artifact.sha256);
        throw new KilnError('INTEGRITY', `${artifact.name} (${artifact.path}): the cached copy no longer matches its sha256 ${artifact.sha256}; it was removed from the cache: run kiln bundle again`, {
          artifact: artifact.path,
        });
      }
    }
    await rename(part, options.output);
    return { path: options.output, manifest, sha256: written.archive.sha256, size: written.archive.size, ...ctx.stats };
  } finally {
    await rm(part, { force: true });
    await rm(scratch, { recursive: true, force: true });
  }
}
