/**
 * Decoding of EC2 Query requests: a form-encoded body (`Action=RunInstances&Filter.1.Name=...`)
 * becomes a nested value where numbered segments become arrays in index order, e.g.
 * `Filter.1.Value.2=x` -> `{ Filter: [{ Value: [undefined, 'x'] }] }` (gaps compacted away).
 * Typed accessors then read parameters and raise EC2's own errors for missing or bad values.
 */
import { Ec2Error } from './errors.js';

export type QueryValue = string | QueryValue[] | { [key: string]: QueryValue };
export type QueryObject = { [key: string]: QueryValue };

/** Parses a form-encoded body into a flat list of key/value pairs. */
export function parseForm(body: string): Array<[string, string]> {
  return [...new URLSearchParams(body).entries()];
}

/** Builds the nested value from flat `A.1.B` keys. */
export function decodeQuery(pairs: Array<[string, string]>): QueryObject {
  const root: Record<string, unknown> = {};
  for (const [key, value] of pairs) {
    const parts = key.split('.');
    let node = root;
    parts.forEach((part, i) => {
      if (part === '__proto__' || part === 'constructor' || part === 'prototype') return;
      if (i === parts.length - 1) {
        node[part] = value;
        return;
      }
      const next = node[part];
      if (typeof next !== 'object' || next === null) node[part] = {};
      node = node[part] as Record<string, unknown>;
    });
  }
  return normalize(root) as QueryObject;
}

function normalize(node: unknown): QueryValue {
  if (typeof node === 'string') return node;
  const obj = node as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length > 0 && keys.every((k) => /^\d+$/.test(k))) {
    return keys
      .map(Number)
      .sort((a, b) => a - b)
      .map((k) => normalize(obj[String(k)]));
  }
  const out: QueryObject = {};
  for (const k of keys) out[k] = normalize(obj[k]);
  return out;
}

/** Read access to one request's parameters (or a nested struct of them). */
export class Params {
  constructor(readonly raw: QueryObject) {}

  has(name: string): boolean {
    return this.raw[name] !== undefined;
  }

  str(name: string): string | undefined {
    const v = this.raw[name];
    return typeof v === 'string' ? v : undefined;
  }

  required(name: string): string {
    const v = this.str(name);
    if (v === undefined || v === '') {
      throw new Ec2Error('MissingParameter', `The request must contain the parameter ${name}`);
    }
    return v;
  }

  int(name: string): number | undefined {
    const v = this.str(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n)) {
      throw new Ec2Error('InvalidParameterValue', `Invalid value '${v}' for ${name}. It must be an integer.`);
    }
    return n;
  }

  bool(name: string): boolean | undefined {
    const v = this.str(name);
    if (v === undefined) return undefined;
    if (v !== 'true' && v !== 'false') {
      throw new Ec2Error('InvalidParameterValue', `Invalid value '${v}' for ${name}. It must be a boolean.`);
    }
    return v === 'true';
  }

  /** A list of strings (`InstanceId.1`, `InstanceId.2`, ...). */
  strings(name: string): string[] {
    const v = this.raw[name];
    if (v === undefined) return [];
    const items = Array.isArray(v) ? v : [v];
    return items.filter((x): x is string => typeof x === 'string');
  }

  /** A list of structs (`Filter.1.Name`, ...). */
  structs(name: string): Params[] {
    const v = this.raw[name];
    if (!Array.isArray(v)) return [];
    return v
      .filter((x): x is QueryObject => typeof x === 'object' && x !== null && !Array.isArray(x))
      .map((x) => new Params(x));
  }

  struct(name: string): Params | undefined {
    const v = this.raw[name];
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    return new Params(v);
  }

  /** A canonical string of the parameters, for ClientToken comparisons. */
  fingerprint(omit: string[] = []): string {
    const strip = (o: QueryObject) => Object.fromEntries(Object.entries(o).filter(([k]) => !omit.includes(k)));
    return JSON.stringify(sortKeys(strip(this.raw)));
  }
}

function sortKeys(v: QueryValue): QueryValue {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map(sortKeys);
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .map((k) => [k, sortKeys(v[k] as QueryValue)]),
  );
}
