/**
 * The fake's resource store: one subscription, its resource groups and every resource in them,
 * keyed by lower-cased ARM id (ARM ids and names are case-insensitive, case-preserving).
 * Nested resources (subnets, security rules, gallery images and versions) are records of their
 * own whose id extends the parent's.
 */
import { armErrors } from './errors.js';

export interface ResourceGroupRecord {
  id: string;
  name: string;
  location: string;
  tags: Record<string, string>;
  provisioningState: 'Succeeded' | 'Deleting';
}

export interface ResourceRecord<I = unknown> {
  id: string;
  name: string;
  /** Full type, e.g. `Microsoft.Compute/galleries/images`. */
  type: string;
  resourceGroup: string;
  location: string;
  tags: Record<string, string>;
  sku?: Record<string, unknown>;
  managedBy?: string;
  /** The ARM `properties` bag as served (provisioningState included). */
  properties: Record<string, unknown>;
  /** Listed by `resources.list` (tracked resources); subnets and rules are not. */
  tracked: boolean;
  /** Fake-only bookkeeping (power state, backend ids...). Never served. */
  internal: I;
  createdAt: string;
}

export interface ListFilter {
  type?: string;
  resourceGroup?: string;
  tracked?: boolean;
  tagName?: string;
  tagValue?: string;
}

const lower = (s: string): string => s.toLowerCase();

export class ArmState {
  readonly groups = new Map<string, ResourceGroupRecord>();
  readonly resources = new Map<string, ResourceRecord>();

  constructor(readonly subscriptionId: string) {}

  groupId(rg: string): string {
    return `/subscriptions/${this.subscriptionId}/resourceGroups/${rg}`;
  }

  /** `/subscriptions/s/resourceGroups/rg/providers/Ns/t1/n1/t2/n2` for type `Ns/t1/t2`, names [n1, n2]. */
  resourceId(rg: string, type: string, names: string[]): string {
    const [ns, ...types] = type.split('/');
    let id = `${this.groupId(rg)}/providers/${ns}`;
    types.forEach((t, i) => (id += `/${t}/${names[i] ?? ''}`));
    return id;
  }

  getGroup(name: string): ResourceGroupRecord | undefined {
    return this.groups.get(lower(name));
  }

  /** The group, or ARM's 404; with `forWrite`, also refuses a group that is being deleted. */
  requireGroup(name: string, forWrite = false): ResourceGroupRecord {
    const group = this.getGroup(name);
    if (!group) throw armErrors.resourceGroupNotFound(name);
    if (forWrite && group.provisioningState === 'Deleting') throw armErrors.resourceGroupBeingDeleted(group.name);
    return group;
  }

  putGroup(group: ResourceGroupRecord): void {
    this.groups.set(lower(group.name), group);
  }

  removeGroup(name: string): void {
    this.groups.delete(lower(name));
  }

  get<I = unknown>(id: string | undefined): ResourceRecord<I> | undefined {
    if (!id) return undefined;
    return this.resources.get(lower(trimSlash(id))) as ResourceRecord<I> | undefined;
  }

  put(record: ResourceRecord): void {
    this.resources.set(lower(record.id), record);
  }

  /** Removes a record and every record nested under it. */
  remove(id: string): void {
    for (const key of this.descendantKeys(id)) this.resources.delete(key);
    this.resources.delete(lower(id));
  }

  /** Whether `record` is still the live record for its id (not deleted or replaced meanwhile). */
  isLive(record: ResourceRecord): boolean {
    return this.resources.get(lower(record.id)) === record;
  }

  /** Records nested directly or indirectly under `id`. */
  descendants(id: string): ResourceRecord[] {
    return this.descendantKeys(id).map((k) => this.resources.get(k) as ResourceRecord);
  }

  /** Records of `type` that are direct children of `parentId`. */
  children<I = unknown>(parentId: string, type: string): ResourceRecord<I>[] {
    const prefix = lower(parentId) + '/';
    return [...this.resources.values()].filter(
      (r) => lower(r.type) === lower(type) && lower(r.id).startsWith(prefix),
    ) as ResourceRecord<I>[];
  }

  list<I = unknown>(filter: ListFilter = {}): ResourceRecord<I>[] {
    return [...this.resources.values()].filter((r) => {
      if (filter.type && lower(r.type) !== lower(filter.type)) return false;
      if (filter.resourceGroup && lower(r.resourceGroup) !== lower(filter.resourceGroup)) return false;
      if (filter.tracked !== undefined && r.tracked !== filter.tracked) return false;
      if (filter.tagName !== undefined) {
        const key = Object.keys(r.tags).find((k) => lower(k) === lower(filter.tagName as string));
        if (key === undefined) return false;
        if (filter.tagValue !== undefined && r.tags[key] !== filter.tagValue) return false;
      }
      return true;
    }) as ResourceRecord<I>[];
  }

  /** Every live resource group and resource, by type, sorted: what cleanup tests assert on. */
  inventory(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    const add = (type: string, id: string): void => {
      (out[type] ??= []).push(id);
    };
    for (const g of this.groups.values()) add('Microsoft.Resources/resourceGroups', g.id);
    for (const r of this.resources.values()) add(r.type, r.id);
    for (const ids of Object.values(out)) ids.sort();
    return out;
  }

  private descendantKeys(id: string): string[] {
    const prefix = lower(trimSlash(id)) + '/';
    return [...this.resources.keys()].filter((k) => k.startsWith(prefix));
  }
}

function trimSlash(id: string): string {
  return id.endsWith('/') ? id.slice(0, -1) : id;
}
