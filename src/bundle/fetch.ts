/**
 * Fetching each artifact of a plan into the bundle cache, verified: the K3s binary and airgap
 * images against the release's sha256sum-amd64.txt (or the definition's pinned sha256), the Helm
 * archive against its .sha256sum (or the pin), each chart against its repository index.yaml digest,
 * and each container image by its linux/amd64 manifest digest (skopeo checks every blob). What the
 * cache already holds under the expected sha256 is reused without downloading it again.
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { KilnError } from '../core/errors.js';
import { sha256File } from '../core/sha256.js';
import type { ArtifactPlan, ChartPlan, RegistryMirrorPlan } from '../definition/plan.js';
import type { ArtifactCache } from './cache.js';
import { chartEntry, parseSha256Sums, parseSingleSha256 } from './checksums.js';
import { download, type DownloadOptions } from './download.js';
import { parseImageRef } from './image-ref.js';
import { copyImage, imageSource, resolvePlatformDigest } from './images.js';
import { bundlePaths, helmArchive, K3S_AIRGAP_IMAGES, type BundleArtifact } from './manifest.js';

export interface FetchContext {
  cache: ArtifactCache;
  /** Scratch directory on the cache's file system. */
  scratch: string;
  log: (line: string) => void;
  signal?: AbortSignal;
  download?: Omit<DownloadOptions, 'signal' | 'log'>;
  /** Counts for the summary. */
  stats: { downloaded: number; reused: number };
}

/** An artifact and where its verified file is (in the cache). */
export interface Fetched {
  artifact: BundleArtifact;
  file: string;
}

export async function fetchK3s(ctx: FetchContext, k3s: ArtifactPlan): Promise<Fetched[]> {
  const release = `${k3s.baseUrl.replace(/\/+$/, '')}/${encodeURIComponent(k3s.version)}`;
  const sumsUrl = `${release}/sha256sum-amd64.txt`;
  const sums = parseSha256Sums(await fetchText(ctx, sumsUrl));
  const published = (name: string) => {
    const sha = sums.get(name);
    if (!sha) throw new KilnError('DOWNLOAD', `${sumsUrl} lists no checksum for ${name}`, { url: sumsUrl });
    return sha;
  };
  const binary = { sha256: k3s.sha256 ?? published('k3s'), verifiedBy: k3s.sha256 ? 'k3s.sha256 in the definition' : sumsUrl };
  return [
    await fetchFile(ctx, `${release}/k3s`, binary.sha256, {
      path: bundlePaths.k3s(k3s.version, 'k3s'),
      kind: 'k3s-binary',
      name: `K3s ${k3s.version} binary`,
      version: k3s.version,
      verifiedBy: binary.verifiedBy,
    }),
    await fetchFile(ctx, `${release}/${K3S_AIRGAP_IMAGES}`, published(K3S_AIRGAP_IMAGES), {
      path: bundlePaths.k3s(k3s.version, K3S_AIRGAP_IMAGES),
      kind: 'k3s-airgap-images',
      name: `K3s ${k3s.version} airgap images`,
      version: k3s.version,
      verifiedBy: sumsUrl,
    }),
  ];
}

export async function fetchHelm(ctx: FetchContext, helm: ArtifactPlan): Promise<Fetched> {
  const url = `${helm.baseUrl.replace(/\/+$/, '')}/${helmArchive(helm.version)}`;
  const sha256 = helm.sha256 ?? parseSingleSha256(await fetchText(ctx, `${url}.sha256sum`), `${url}.sha256sum`);
  return fetchFile(ctx, url, sha256, {
    path: bundlePaths.helm(helm.version),
    kind: 'helm-archive',
    name: `Helm ${helm.version} archive`,
    version: helm.version,
    verifiedBy: helm.sha256 ? 'helm.sha256 in the definition' : `${url}.sha256sum`,
  });
}

/** Every chart once (by chart and version), each repository's index read once. */
export async function fetchCharts(ctx: FetchContext, charts: ChartPlan[]): Promise<Fetched[]> {
  const indexes = new Map<string, string>();
  const fetched = new Map<string, Fetched>();
  for (const chart of charts) {
    const bundlePath = bundlePaths.chart(chart.chart, chart.version);
    if (fetched.has(bundlePath)) continue;
    const repository = chart.repository.replace(/\/+$/, '');
    const indexUrl = `${repository}/index.yaml`;
    if (!indexes.has(repository)) indexes.set(repository, await fetchText(ctx, indexUrl));
    const entry = chartEntry(indexes.get(repository) ?? '', repository, chart.chart, chart.version);
    fetched.set(
      bundlePath,
      await fetchFile(ctx, entry.url, entry.digest, {
        path: bundlePath,
        kind: 'chart',
        name: `chart ${chart.chart} ${chart.version}`,
        version: chart.version,
        verifiedBy: `${indexUrl} digest`,
        chart: { chart: chart.chart, repository },
      }),
    );
  }
  return [...fetched.values()];
}

/** Every image of every chart once, by normalized name. */
export async function fetchImages(ctx: FetchContext, charts: ChartPlan[], mirror: RegistryMirrorPlan | undefined): Promise<Fetched[]> {
  const fetched = new Map<string, Fetched>();
  for (const reference of charts.flatMap((c) => c.images)) {
    const ref = parseImageRef(reference);
    const bundlePath = bundlePaths.image(reference);
    if (fetched.has(bundlePath)) continue;
    const source = await imageSource(ref, mirror, ctx.scratch);
    const digest = await resolvePlatformDigest(ref, source, ctx.signal);
    const key = `${ref.name} ${digest}`;
    let record = await ctx.cache.image(key);
    if (record) {
      ctx.stats.reused++;
      ctx.log(`image ${ref.name}: reusing the verified archive of ${digest}`);
    } else {
      ctx.log(`image ${ref.name}: copying ${digest} (linux/amd64) from ${source.via}`);
      const out = path.join(ctx.scratch, 'image.tar');
      const archive = await copyImage(ref, digest, source, ctx.scratch, out, ctx.signal);
      await ctx.cache.put(out, archive.sha256);
      record = archive;
      await ctx.cache.rememberImage(key, record);
      ctx.stats.downloaded++;
    }
    fetched.set(bundlePath, {
      file: ctx.cache.file(record.sha256),
      artifact: {
        path: bundlePath,
        kind: 'image',
        name: `image ${ref.name}`,
        version: ref.tag ?? ref.digest ?? digest,
        size: record.size,
        sha256: record.sha256,
        source: `${source.location}@${digest}`,
        verifiedBy: `manifest digest ${digest}`,
        image: { reference, name: ref.name, digest },
      },
    });
  }
  return [...fetched.values()];
}

type Describe = Omit<BundleArtifact, 'size' | 'sha256' | 'source'>;

/** The file at `url` with sha256 `expected`, from the cache or downloaded and checked. */
async function fetchFile(ctx: FetchContext, url: string, expected: string, describe: Describe): Promise<Fetched> {
  const cachedSize = await ctx.cache.has(expected);
  if (cachedSize !== undefined) {
    ctx.stats.reused++;
    ctx.log(`${describe.name}: reusing the verified copy (sha256 ${expected.slice(0, 12)}...)`);
    return { file: ctx.cache.file(expected), artifact: { ...describe, size: cachedSize, sha256: expected, source: url } };
  }
  ctx.log(`${describe.name}: downloading ${url}`);
  const tmp = path.join(ctx.scratch, 'download');
  const result = await download(url, tmp, { ...ctx.download, signal: ctx.signal, log: ctx.log });
  const actual = await sha256File(tmp);
  if (actual !== expected) {
    await rm(tmp, { force: true });
    throw new KilnError('INTEGRITY', `${describe.name} (${describe.path}): the download from ${url} has sha256 ${actual}, but ${describe.verifiedBy} says ${expected}`, {
      artifact: describe.path,
      url,
    });
  }
  ctx.stats.downloaded++;
  const resumed = result.resumedFrom.length > 0 ? `, resumed at byte ${result.resumedFrom.join(', ')}` : '';
  ctx.log(`${describe.name}: ${result.bytes} bytes, sha256 verified against ${describe.verifiedBy} (${result.attempts} attempt${result.attempts > 1 ? 's' : ''}${resumed})`);
  return { file: await ctx.cache.put(tmp, expected), artifact: { ...describe, size: result.bytes, sha256: expected, source: url } };
}

async function fetchText(ctx: FetchContext, url: string): Promise<string> {
  const tmp = path.join(ctx.scratch, 'text');
  await download(url, tmp, { ...ctx.download, signal: ctx.signal, log: ctx.log });
  try {
    return await readFile(tmp, 'utf8');
  } finally {
    await rm(tmp, { force: true });
  }
}
