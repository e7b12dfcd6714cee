/** Tags on any modelled resource: CreateTags, DeleteTags, DescribeTags. */
import { Ec2Error } from '../errors.js';
import { applyFilters, paginate, type FilterFields } from '../filters.js';
import type { ResourceType, Tags } from '../model.js';
import { applyTags, validateTag, type ActionHandler } from './common.js';

interface TagEntry {
  key: string;
  value: string;
  resourceId: string;
  resourceType: ResourceType;
  /** All tags of the resource, so `tag:<key>` filters work here too. */
  tags: Tags;
}

const TAG_FILTERS: FilterFields<TagEntry> = {
  key: (t) => t.key,
  value: (t) => t.value,
  'resource-id': (t) => t.resourceId,
  'resource-type': (t) => t.resourceType,
};

const createTags: ActionHandler = ({ state, region, params }) => {
  const ids = params.strings('ResourceId');
  if (!ids.length) throw new Ec2Error('MissingParameter', 'The request must contain the parameter resourceIdSet');
  const tags = new Map<string, string>();
  for (const tag of params.structs('Tag')) {
    const key = tag.str('Key') ?? '';
    const value = tag.str('Value') ?? '';
    validateTag(key, value);
    tags.set(key, value);
  }
  if (!tags.size) throw new Ec2Error('MissingParameter', 'The request must contain the parameter tagSet');
  const resources = ids.map((id) => state.taggable(region, id));
  for (const r of resources) {
    const merged = new Map(r.tags);
    applyTags(merged, tags); // validates the limit before touching the resource
  }
  for (const r of resources) applyTags(r.tags, tags);
  return { return: true };
};

const deleteTags: ActionHandler = ({ state, region, params }) => {
  const ids = params.strings('ResourceId');
  if (!ids.length) throw new Ec2Error('MissingParameter', 'The request must contain the parameter resourceIdSet');
  const resources = ids.map((id) => state.taggable(region, id));
  const requested = params.structs('Tag').map((t) => ({ key: t.required('Key'), value: t.str('Value') }));
  for (const r of resources) {
    if (!requested.length) {
      r.tags.clear();
      continue;
    }
    for (const { key, value } of requested) {
      if (value === undefined || r.tags.get(key) === value) r.tags.delete(key);
    }
  }
  return { return: true };
};

const describeTags: ActionHandler = ({ state, region, params }) => {
  const entries: TagEntry[] = [];
  for (const r of state.allTaggable(region)) {
    for (const [key, value] of r.tags) {
      entries.push({ key, value, resourceId: r.id, resourceType: r.type, tags: r.tags });
    }
  }
  entries.sort((a, b) => a.resourceId.localeCompare(b.resourceId) || a.key.localeCompare(b.key));
  const filtered = applyFilters(entries, params.structs('Filter'), TAG_FILTERS);
  const page = paginate(filtered, params);
  return {
    tagSet: page.items.map((t) => ({
      resourceId: t.resourceId,
      resourceType: t.resourceType,
      key: t.key,
      value: t.value,
    })),
    nextToken: page.nextToken,
  };
};

export const tagActions: Record<string, ActionHandler> = {
  CreateTags: createTags,
  DeleteTags: deleteTags,
  DescribeTags: describeTags,
};
