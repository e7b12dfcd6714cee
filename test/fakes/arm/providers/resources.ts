/**
 * Microsoft.Resources: resource groups (create/get/checkExistence/list/delete) and the generic
 * resource listing (`resources.list`, `resources.listByResourceGroup`) with ARM's `$filter`
 * grammar as far as a sweep needs it: `tagName eq 'k'`, `tagName eq 'k' and tagValue eq 'v'`,
 * `resourceType eq 't'`, `name eq 'n'`. Like ARM, a tag filter cannot be combined with anything
 * else (400 InvalidFilterInQueryString).
 *
 * Deleting a group answers 202 with a `Location` only; after the `resourceGroup.delete` step the
 * group's resources are purged (VMs first, galleries last, backend disks/snapshots/machines
 * released) and the group disappears.
 */
import { ArmError, armErrors } from '../errors.js';
import type { Reply } from '../hooks.js';
import { requireLocation, startLro, tagsOf, type Core, type RequestContext } from '../kinds.js';
import type { ListFilter, ResourceGroupRecord } from '../state.js';

export const RESOURCES_API_VERSIONS = ['2025-04-01', '2024-11-01', '2024-07-01', '2024-03-01', '2023-07-01', '2022-09-01', '2021-04-01'] as const;

const GROUP_TYPE = 'Microsoft.Resources/resourceGroups';

export function groupJson(g: ResourceGroupRecord): Record<string, unknown> {
  return {
    id: g.id,
    name: g.name,
    type: GROUP_TYPE,
    location: g.location,
    tags: { ...g.tags },
    properties: { provisioningState: g.provisioningState },
  };
}

export class ResourceGroups {
  constructor(private readonly core: Core) {}

  list(ctx: RequestContext): Reply {
    const filter = parseFilter(ctx.query.get('$filter'), false);
    const groups = [...this.core.state.groups.values()].filter((g) => matchesTags(g.tags, filter));
    return { status: 200, body: { value: groups.map(groupJson) } };
  }

  get(rg: string): Reply {
    return { status: 200, body: groupJson(this.core.state.requireGroup(rg)) };
  }

  head(rg: string): Reply {
    return { status: this.core.state.getGroup(rg) ? 204 : 404 };
  }

  put(ctx: RequestContext, rg: string): Reply {
    const location = requireLocation(ctx.body);
    const tags = tagsOf(ctx.body);
    const existing = this.core.state.getGroup(rg);
    if (existing) {
      if (existing.provisioningState === 'Deleting') throw armErrors.resourceGroupBeingDeleted(existing.name);
      if (existing.location !== location) {
        throw new ArmError(
          409,
          'InvalidResourceGroupLocation',
          `Invalid resource group location '${location}'. The Resource group already exists in location '${existing.location}'.`,
        );
      }
      existing.tags = tags;
      return { status: 200, body: groupJson(existing) };
    }
    if (!/^[-\w.()]{1,90}$/.test(rg) || rg.endsWith('.')) {
      throw armErrors.badRequest('InvalidResourceGroup', `The provided resource group name '${rg}' has these invalid characters.`);
    }
    const group: ResourceGroupRecord = {
      id: this.core.state.groupId(rg),
      name: rg,
      location,
      tags,
      provisioningState: 'Succeeded',
    };
    this.core.state.putGroup(group);
    return { status: 201, body: groupJson(group) };
  }

  delete(ctx: RequestContext, rg: string): Reply {
    const group = this.core.state.requireGroup(rg);
    group.provisioningState = 'Deleting';
    return startLro(this.core, ctx, { id: group.id, type: GROUP_TYPE, location: group.location }, {
      step: 'resourceGroup.delete',
      status: 202,
      asyncOperation: false,
      location: true,
      work: async () => {
        await this.core.steps.wait('resourceGroup.delete', { resourceId: group.id });
        await this.purge(group);
        if (this.core.state.getGroup(group.name) === group) this.core.state.removeGroup(group.name);
      },
      onFailure: () => {
        if (this.core.state.getGroup(group.name) === group) group.provisioningState = 'Succeeded';
      },
    });
  }

  /** Deletes everything in the group, dependants first, releasing backend resources. */
  private async purge(group: ResourceGroupRecord): Promise<void> {
    const order = (type: string): number => this.core.kind(type)?.purgeOrder ?? 100;
    const records = this.core.state
      .list({ resourceGroup: group.name })
      .sort((a, b) => order(a.type) - order(b.type));
    for (const rec of records) {
      if (!this.core.state.isLive(rec)) continue;
      await this.core.kind(rec.type)?.purge?.(rec);
      this.core.state.remove(rec.id);
    }
  }

  /** `resources.list` / `resources.listByResourceGroup`: tracked resources only. */
  listResources(ctx: RequestContext, rg?: string): Reply {
    if (rg) this.core.state.requireGroup(rg);
    const filter = parseFilter(ctx.query.get('$filter'), true);
    const records = this.core.state
      .list({ ...filter, tracked: true, ...(rg ? { resourceGroup: rg } : {}) })
      .filter((r) => !filter.name || r.name.toLowerCase() === filter.name.toLowerCase());
    const value = records.map((r) => {
      const json: Record<string, unknown> = { id: r.id, name: r.name, type: r.type, location: r.location, tags: { ...r.tags } };
      if (r.sku) json.sku = { ...r.sku };
      if (r.managedBy) json.managedBy = r.managedBy;
      return json;
    });
    return { status: 200, body: { value } };
  }
}

const QUOTED = "'((?:[^']|'')*)'";
const unquote = (s: string): string => s.replace(/''/g, "'");

/** ARM's `$filter` subset; anything else is rejected like ARM does. */
export function parseFilter(raw: string | null, allowTypeAndName: boolean): ListFilter & { name?: string } {
  if (raw === null || raw.trim() === '') return {};
  const tag = new RegExp(`^\\s*tagName\\s+eq\\s+${QUOTED}(?:\\s+and\\s+tagValue\\s+eq\\s+${QUOTED})?\\s*$`, 'i').exec(raw);
  if (tag) {
    const out: ListFilter = { tagName: unquote(tag[1] as string) };
    if (tag[2] !== undefined) out.tagValue = unquote(tag[2]);
    return out;
  }
  if (allowTypeAndName) {
    const clauses = raw.split(/\s+and\s+/i);
    const out: ListFilter & { name?: string } = {};
    for (const clause of clauses) {
      const m = new RegExp(`^\\s*(resourceType|name)\\s+eq\\s+${QUOTED}\\s*$`, 'i').exec(clause);
      if (!m) return invalidFilter(raw);
      if ((m[1] as string).toLowerCase() === 'resourcetype') out.type = unquote(m[2] as string);
      else out.name = unquote(m[2] as string);
    }
    return out;
  }
  return invalidFilter(raw);
}

function invalidFilter(raw: string): never {
  throw armErrors.badRequest('InvalidFilterInQueryString', `Invalid $filter '${raw}' specified in the query string.`);
}

function matchesTags(tags: Record<string, string>, filter: ListFilter): boolean {
  if (filter.tagName === undefined) return true;
  const key = Object.keys(tags).find((k) => k.toLowerCase() === filter.tagName?.toLowerCase());
  if (key === undefined) return false;
  return filter.tagValue === undefined || tags[key] === filter.tagValue;
}
