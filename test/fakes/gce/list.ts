/**
 * `list` semantics: the `filter` expression (a minimal subset of the API's syntax), `orderBy`
 * (`name` or `creationTimestamp desc`, the two the API supports), and paging with maxResults /
 * pageToken / nextPageToken.
 *
 * Filter subset: comparisons `field = value`, `field != value`, `field eq regex`, `field ne regex`,
 * `field:*` (field is set), `field : text` (a string field contains text; other fields equal it),
 * values bare or quoted, nested fields with dots (`labels.kiln-run = x`),
 * combined with parentheses and AND (explicit or by juxtaposition) and OR between parenthesised
 * groups. Anything else is a 400 `invalid` error.
 */
import type { Call } from './core.js';
import { invalidField } from './errors.js';

type Cond = (resource: Record<string, unknown>) => boolean;

const TOKEN = /\s*(\(|\)|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|!=|=|:|[^\s()=!:]+)/y;

function tokenize(filter: string): string[] {
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  let rest = filter.trim();
  while (rest.length > 0) {
    TOKEN.lastIndex = 0;
    const m = TOKEN.exec(rest);
    if (!m || m[1] === undefined) throw invalidFilter(filter);
    tokens.push(m[1]);
    rest = rest.slice(m[0].length).trimStart();
  }
  return tokens;
}

const invalidFilter = (filter: string) => invalidField('filter', filter, 'Invalid list filter expression.');

const unquote = (v: string) =>
  (v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")) ? v.slice(1, -1) : v;

function fieldValue(resource: Record<string, unknown>, path: string): unknown {
  let value: unknown = resource;
  for (const part of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[unquote(part)];
  }
  return value;
}

const asText = (v: unknown) => (v === undefined || v === null ? undefined : typeof v === 'object' ? JSON.stringify(v) : String(v));

function comparison(field: string, op: string, raw: string, filter: string): Cond {
  const value = unquote(raw);
  switch (op) {
    case '=':
      return (r) => asText(fieldValue(r, field)) === value;
    case '!=':
      return (r) => asText(fieldValue(r, field)) !== value;
    case ':':
      if (value === '*') return (r) => fieldValue(r, field) !== undefined;
      return (r) => {
        const v = fieldValue(r, field);
        return typeof v === 'string' ? v.includes(value) : asText(v) === value;
      };
    case 'eq':
    case 'ne': {
      let re: RegExp;
      try {
        re = new RegExp(`^(?:${value})$`);
      } catch {
        throw invalidFilter(filter);
      }
      return op === 'eq'
        ? (r) => re.test(asText(fieldValue(r, field)) ?? '')
        : (r) => !re.test(asText(fieldValue(r, field)) ?? '');
    }
    default:
      throw invalidFilter(filter);
  }
}

/** Parses a filter; an empty filter matches everything. */
export function parseFilter(filter: string | null): Cond {
  if (!filter || !filter.trim()) return () => true;
  const tokens = tokenize(filter);
  let pos = 0;
  const peek = () => tokens[pos];
  const next = () => {
    const t = tokens[pos++];
    if (t === undefined) throw invalidFilter(filter);
    return t;
  };

  const parseOr = (): Cond => {
    const terms = [parseAnd()];
    while (peek() === 'OR') {
      pos++;
      terms.push(parseAnd());
    }
    return (r) => terms.some((t) => t(r));
  };
  const parseAnd = (): Cond => {
    const terms = [parseTerm()];
    while (peek() !== undefined && peek() !== ')' && peek() !== 'OR') {
      if (peek() === 'AND') pos++;
      terms.push(parseTerm());
    }
    return (r) => terms.every((t) => t(r));
  };
  const parseTerm = (): Cond => {
    if (peek() === '(') {
      pos++;
      const inner = parseOr();
      if (next() !== ')') throw invalidFilter(filter);
      return inner;
    }
    const field = next();
    const op = next();
    const value = next();
    return comparison(field, op, value, filter);
  };

  const cond = parseOr();
  if (pos !== tokens.length) throw invalidFilter(filter);
  return cond;
}

/** Applies filter, orderBy and paging to rendered resources; returns the list body fields. */
export function listPage(
  call: Call,
  items: Record<string, unknown>[],
): { items?: Record<string, unknown>[]; nextPageToken?: string } {
  const cond = parseFilter(call.query.get('filter'));
  let selected = items.filter(cond);
  const orderBy = call.query.get('orderBy');
  const byName = (a: Record<string, unknown>, b: Record<string, unknown>) => String(a.name).localeCompare(String(b.name));
  if (!orderBy || orderBy === 'name') selected = selected.sort(byName);
  else if (orderBy === 'creationTimestamp desc') {
    selected = selected.sort(
      (a, b) => Date.parse(String(b.creationTimestamp)) - Date.parse(String(a.creationTimestamp)) || byName(a, b),
    );
  } else throw invalidField('orderBy', orderBy, "Only 'name' and 'creationTimestamp desc' are supported.");

  const maxRaw = call.query.get('maxResults');
  const max = maxRaw ? Number(maxRaw) : 500;
  if (!Number.isInteger(max) || max < 0 || max > 500) throw invalidField('maxResults', maxRaw, 'Must be between 0 and 500.');
  const token = call.query.get('pageToken');
  const offset = token ? Number(Buffer.from(token, 'base64url').toString('utf8')) : 0;
  if (!Number.isInteger(offset) || offset < 0) throw invalidField('pageToken', token, 'Invalid page token.');
  const pageSize = max === 0 ? 500 : max;
  const page = selected.slice(offset, offset + pageSize);
  const out: { items?: Record<string, unknown>[]; nextPageToken?: string } = {};
  if (page.length > 0) out.items = page;
  if (offset + pageSize < selected.length) out.nextPageToken = Buffer.from(String(offset + pageSize)).toString('base64url');
  return out;
}

/**
 * `aggregatedList` semantics: filter and paging over the items of every scope (zone), then grouped
 * by scope as `items: {"zones/<zone>": {<key>: [...]}}`. Scopes without a match are left out (the
 * API lists them with a NO_RESULTS_ON_PAGE warning, which clients skip).
 */
export function aggregatedPage(
  call: Call,
  key: string,
  items: { scope: string; item: Record<string, unknown> }[],
): { items?: Record<string, Record<string, unknown>>; nextPageToken?: string } {
  const scopeOf = new Map(items.map(({ scope, item }) => [item, scope]));
  const page = listPage(call, items.map(({ item }) => item));
  const grouped: Record<string, Record<string, unknown>> = {};
  for (const item of page.items ?? []) {
    const scope = scopeOf.get(item) ?? 'global';
    const group = (grouped[scope] ??= { [key]: [] });
    (group[key] as Record<string, unknown>[]).push(item);
  }
  return { ...(page.items ? { items: grouped } : {}), ...(page.nextPageToken ? { nextPageToken: page.nextPageToken } : {}) };
}
