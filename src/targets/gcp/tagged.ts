/**
 * `kiln cleanup --sweep` on GCE: everything in the project that carries kiln's run label, as entries
 * `destroy` can delete. Instances and disks of every zone (aggregatedList), images (but not a
 * finished build's: those carry `kiln-published` and are products), and firewall rules, which take
 * no labels and carry the tags in their description instead.
 */
import type { TaggedResource } from '../target.js';
import type { GceApi, Scope } from './client.js';
import { BUILD_LABEL, PUBLISHED_LABEL, RUN_LABEL } from './labels.js';

const LABELLED = `labels.${RUN_LABEL}:*`;

/** What every listed GCE resource has. */
interface Resource {
  name?: string | null;
  selfLink?: string | null;
  creationTimestamp?: string | null;
  labels?: Record<string, string> | null;
}

const basics = (r: Resource) => ({ name: r.name, selfLink: r.selfLink, creationTimestamp: r.creationTimestamp });

interface Found {
  kind: string;
  name?: string | null;
  zone?: string;
  selfLink?: string | null;
  creationTimestamp?: string | null;
  runId?: string;
  build?: string;
}

export async function listTaggedIn(api: GceApi, scope: Scope, project: string): Promise<TaggedResource[]> {
  const what = `resources labelled ${RUN_LABEL} in project ${project}`;
  const found: Found[] = [];
  const labelled = (kind: string, r: Resource, zone?: string): Found => ({ kind, ...basics(r), ...(zone ? { zone } : {}), runId: r.labels?.[RUN_LABEL], build: r.labels?.[BUILD_LABEL] });

  const instances = await api.call(scope, 'listing', what, async () => {
    const out: Found[] = [];
    for await (const [scopeName, list] of api.clients.instances.aggregatedListAsync({ project, filter: LABELLED })) {
      for (const i of list.instances ?? []) out.push(labelled('instance', i, zoneOf(scopeName)));
    }
    return out;
  });
  const disks = await api.call(scope, 'listing', what, async () => {
    const out: Found[] = [];
    for await (const [scopeName, list] of api.clients.disks.aggregatedListAsync({ project, filter: LABELLED })) {
      for (const d of list.disks ?? []) out.push(labelled('disk', d, zoneOf(scopeName)));
    }
    return out;
  });
  const [images] = await api.call(scope, 'listing', what, () => api.clients.images.list({ project, filter: LABELLED }));
  const [firewalls] = await api.call(scope, 'listing', what, () => api.clients.firewalls.list({ project, filter: 'description : "kiln:run="' }));
  found.push(...instances, ...disks);
  for (const i of images) if (!i.labels?.[PUBLISHED_LABEL]) found.push(labelled('image', i));
  for (const f of firewalls) found.push({ kind: 'firewall', ...basics(f), runId: tagIn(f.description, 'kiln:run'), build: tagIn(f.description, 'kiln:build') });
  return found.flatMap((f) => asTagged(f, project));
}

function asTagged(f: Found, project: string): TaggedResource[] {
  if (!f.name || !f.runId) return [];
  const created = f.creationTimestamp ? new Date(f.creationTimestamp) : undefined;
  return [
    {
      target: 'gcp',
      kind: f.kind,
      id: f.selfLink ?? f.name,
      name: f.name,
      runId: f.runId,
      build: f.build ?? f.runId,
      group: project,
      ...(f.zone ? { zone: f.zone } : {}),
      ...(created && !Number.isNaN(created.getTime()) ? { createdAt: created.toISOString() } : {}),
    },
  ];
}

/** `zones/us-central1-f` -> `us-central1-f`. */
function zoneOf(scopeName: string): string {
  return scopeName.split('/').pop() ?? scopeName;
}

/** A `key=value` tag from a description written by `describeTags`. */
function tagIn(description: string | null | undefined, key: string): string | undefined {
  for (const word of (description ?? '').split(/\s+/)) if (word.startsWith(`${key}=`)) return word.slice(key.length + 1);
  return undefined;
}
