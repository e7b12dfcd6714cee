/**
 * Reading the checksums the release sites publish: K3s's sha256sum-amd64.txt, Helm's
 * <archive>.sha256sum, and a Helm repository's index.yaml (chart digests and download URLs).
 */
import { parse } from 'yaml';
import { KilnError } from '../core/errors.js';
import { isSafeUrl, SHA256 } from '../definition/values.js';

/** "<sha256>  <name>" lines (sha256sum format, "*name" for binary mode) as name -> sha256. */
export function parseSha256Sums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([A-Fa-f0-9]{64})\s+\*?(?:\.\/)?(\S.*?)\s*$/.exec(line);
    if (match?.[1] && match[2]) sums.set(match[2], match[1].toLowerCase());
  }
  return sums;
}

/** A `<archive>.sha256sum` file: "<sha256>  <name>", or just the hash. */
export function parseSingleSha256(text: string, source: string): string {
  const first = text.trim().split(/\s+/)[0]?.toLowerCase() ?? '';
  if (!SHA256.test(first)) throw new KilnError('DOWNLOAD', `${source} holds no sha256 (found ${JSON.stringify(text.slice(0, 80))})`, { url: source });
  return first;
}

export interface ChartEntry {
  digest: string;
  /** Absolute download URL of the chart archive. */
  url: string;
}

/** The digest and download URL of `chart` at `version` in a repository index.yaml. */
export function chartEntry(indexText: string, repository: string, chart: string, version: string): ChartEntry {
  const indexUrl = `${repository.replace(/\/+$/, '')}/index.yaml`;
  let index: unknown;
  try {
    index = parse(indexText);
  } catch (err) {
    throw new KilnError('DOWNLOAD', `${indexUrl} is not valid YAML: ${(err as Error).message.split('\n')[0] ?? ''}`, { url: indexUrl });
  }
  const entries = (index as { entries?: Record<string, unknown> } | null)?.entries?.[chart];
  const entry = Array.isArray(entries) ? (entries as { version?: unknown; digest?: unknown; urls?: unknown }[]).find((e) => String(e.version) === version) : undefined;
  if (!entry) throw new KilnError('DOWNLOAD', `chart ${chart} version ${version} is not in ${indexUrl}`, { url: indexUrl, chart });
  const digest = typeof entry.digest === 'string' ? entry.digest.toLowerCase() : '';
  if (!SHA256.test(digest)) {
    throw new KilnError('INTEGRITY', `${indexUrl} lists no sha256 digest for chart ${chart} ${version}: a bundle only carries verified artifacts`, { url: indexUrl, chart });
  }
  const first = Array.isArray(entry.urls) ? entry.urls[0] : undefined;
  if (typeof first !== 'string') throw new KilnError('DOWNLOAD', `${indexUrl} lists no download URL for chart ${chart} ${version}`, { url: indexUrl, chart });
  const url = new URL(first, `${repository.replace(/\/+$/, '')}/`).toString();
  if (!isSafeUrl(url)) throw new KilnError('DOWNLOAD', `${indexUrl} gives ${JSON.stringify(first)} for chart ${chart} ${version}: not a plain http(s) URL`, { url: indexUrl, chart });
  return { digest, url };
}
