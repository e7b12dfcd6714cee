/**
 * Resources in the subscription that carry `kiln:run`, for `kiln cleanup --sweep`. Only the kinds a
 * build deletes anyway are listed (VMs, disks, network, temporary groups): managed images and
 * gallery versions carry run tags too but are products, and a sweep must never take them; nor a
 * group marked `kiln:holds` (kept because it holds the managed image). The one managed image that
 * is no product, the OS-only image a validation boots from, is marked `kiln:temporary` and listed.
 */
import { KilnError } from '../../core/errors.js';
import type { TaggedResource } from '../target.js';
import type { AzureClientPool } from './clients.js';
import { cloudError } from './errors.js';
import { ARM_TYPE, KIND, parseId, type AzureKind } from './ids.js';

/** A group with this tag holds an artifact; sweeps leave it alone. */
export const HOLDS_TAG = 'kiln:holds';
/** A managed image with this tag is no product; sweeps take it. */
export const TEMPORARY_IMAGE_TAG = 'kiln:temporary';

const SWEPT: AzureKind[] = [KIND.vm, KIND.disk, KIND.nic, KIND.publicIp, KIND.nsg, KIND.vnet];

function kindOf(type: string | undefined): AzureKind | undefined {
  const entry = Object.entries(ARM_TYPE).find(([, t]) => t.toLowerCase() === (type ?? '').toLowerCase());
  return entry?.[0] as AzureKind | undefined;
}

/** When a run started, from its id (`r` + base-36 milliseconds + 4 random characters), if plausible. */
export function runStarted(runId: string): string | undefined {
  const m = /^r([0-9a-z]{8,9})[0-9a-z]{4}$/.exec(runId);
  const ms = m?.[1] ? parseInt(m[1], 36) : NaN;
  if (!Number.isFinite(ms) || ms < Date.UTC(2020, 0, 1) || ms > Date.now() + 86_400_000) return undefined;
  return new Date(ms).toISOString();
}

export async function listTagged(pool: AzureClientPool, signal: AbortSignal): Promise<TaggedResource[]> {
  // Without a configured subscription there is nowhere to look (a sweep of every target must not fail on it).
  if (!pool.hasSubscription()) return [];
  const c = await pool.clients();
  const filter = "tagName eq 'kiln:run'";
  const found: TaggedResource[] = [];
  const add = (kind: AzureKind, id: string, name: string, tags: Record<string, string>, region: string | undefined, group: string | undefined, created?: Date) => {
    const runId = tags['kiln:run'] ?? '';
    const createdAt = created?.toISOString() ?? runStarted(runId);
    found.push({
      target: 'azure',
      kind,
      name,
      id,
      runId,
      build: tags['kiln:build'] ?? '',
      ...(group ? { group } : {}),
      ...(region ? { region } : {}),
      ...(createdAt ? { createdAt } : {}),
      extra: { subscription: c.subscription },
    });
  };
  try {
    for await (const g of c.resources.resourceGroups.list({ filter, abortSignal: signal })) {
      if (!g.id || !g.name || g.tags?.[HOLDS_TAG]) continue;
      add(KIND.group, g.id, g.name, g.tags ?? {}, g.location, g.name);
    }
    for await (const r of c.resources.resources.list({ filter, expand: 'createdTime', abortSignal: signal })) {
      const kind = kindOf(r.type);
      const temporaryImage = kind === KIND.image && r.tags?.[TEMPORARY_IMAGE_TAG] !== undefined;
      if (!kind || !(SWEPT.includes(kind) || temporaryImage) || !r.id || !r.name) continue;
      add(kind, r.id, r.name, r.tags ?? {}, r.location, parseId(r.id)?.group, r.createdTime);
    }
  } catch (err) {
    if (err instanceof KilnError) throw err;
    throw cloudError(err, 'listing resources tagged kiln:run', `/subscriptions/${c.subscription}`);
  }
  return found;
}
