/**
 * kiln's tags as GCE labels. Label keys and values may hold only lowercase letters, digits, `_` and
 * `-` (at most 63 characters; keys start with a letter), so `kiln:run` becomes `kiln-run` and
 * `5.2.0` becomes `5-2-0`. Firewall rules take no labels: they carry the tags in their description.
 */

const MAX = 63;

/** The label that says which run made a resource (`kiln:run`), and the build (`kiln:build`). */
export const RUN_LABEL = 'kiln-run';
export const BUILD_LABEL = 'kiln-build';
/** On a finished build's images: a product, never swept. */
export const PUBLISHED_LABEL = 'kiln-published';

function clean(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9_-]/g, '-').slice(0, MAX);
}

export function labelKey(key: string): string {
  const cleaned = clean(key);
  return /^[a-z]/.test(cleaned) ? cleaned : `k-${cleaned}`.slice(0, MAX);
}

export function labelValue(value: string): string {
  return clean(value);
}

/** The plan's tags as valid GCE labels (keys that collide after mapping: the last one wins). */
export function gceLabels(tags: Record<string, string>): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(tags)) labels[labelKey(key)] = labelValue(value);
  return labels;
}

/** `kiln:run=r1 kiln:build=...`: the tags, verbatim, for resources without labels. */
export function describeTags(tags: Record<string, string>): string {
  return Object.entries(tags)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}
