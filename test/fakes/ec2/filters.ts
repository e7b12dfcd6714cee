/**
 * EC2 `Filter.N.Name` / `Filter.N.Value.M` semantics: values of one filter are ORed, filters are
 * ANDed, values may hold `*` and `?` wildcards, `tag:<key>` and `tag-key` work on every taggable
 * resource, and an unknown filter name is an InvalidParameterValue error. Also NextToken paging.
 */
import { Ec2Error } from './errors.js';
import type { Params } from './query.js';
import type { Tags } from './model.js';

export type FieldValue = string | number | boolean | undefined | Array<string | undefined>;
export type FilterFields<T> = Record<string, (item: T) => FieldValue>;

export function wildcardMatch(pattern: string, value: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i] as string);
    else if (ch === '*') re += '[\\s\\S]*';
    else if (ch === '?') re += '[\\s\\S]';
    else re += escapeRe(ch);
  }
  return new RegExp(re + '$').test(value);
}

function escapeRe(ch: string): string {
  return ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function candidates(value: FieldValue): string[] {
  if (value === undefined) return [];
  if (Array.isArray(value)) return value.filter((v): v is string => v !== undefined);
  return [String(value)];
}

export function applyFilters<T extends { tags: Tags }>(
  items: T[],
  filters: Params[],
  fields: FilterFields<T>,
): T[] {
  const tests = filters.map((filter) => {
    const name = filter.required('Name');
    const values = filter.strings('Value');
    const any = (actual: string[]) => actual.some((a) => values.some((v) => wildcardMatch(v, a)));
    if (name.startsWith('tag:')) {
      const key = name.slice(4);
      return (item: T) => {
        const v = item.tags.get(key);
        return v !== undefined && any([v]);
      };
    }
    if (name === 'tag-key') return (item: T) => any([...item.tags.keys()]);
    if (name === 'tag-value') return (item: T) => any([...item.tags.values()]);
    const field = fields[name];
    if (!field) throw new Ec2Error('InvalidParameterValue', `The filter '${name}' is invalid`);
    return (item: T) => any(candidates(field(item)));
  });
  return items.filter((item) => tests.every((test) => test(item)));
}

export interface Page<T> {
  items: T[];
  nextToken?: string;
}

/** Applies MaxResults/NextToken. Tokens are opaque offsets. */
export function paginate<T>(items: T[], params: Params, min = 5, max = 1000): Page<T> {
  const maxResults = params.int('MaxResults');
  const token = params.str('NextToken');
  let offset = 0;
  if (token !== undefined) {
    const decoded = /^o(\d+)$/.exec(Buffer.from(token, 'base64url').toString('utf8'));
    if (!decoded) throw new Ec2Error('InvalidPaginationToken', `Invalid pagination token '${token}'`);
    offset = Number(decoded[1]);
  }
  if (maxResults === undefined) return { items: items.slice(offset) };
  if (maxResults < min || maxResults > max) {
    throw new Ec2Error(
      'InvalidParameterValue',
      `Value ( ${maxResults} ) for parameter maxResults is invalid. Expecting a value between ${min} and ${max}.`,
    );
  }
  const end = offset + maxResults;
  return {
    items: items.slice(offset, end),
    nextToken: end < items.length ? Buffer.from(`o${end}`).toString('base64url') : undefined,
  };
}
