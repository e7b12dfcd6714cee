/**
 * Field rules shared by the resources: labels (and their fingerprint), metadata items, network
 * tags, numeric ids, timestamps in the API's format, and the fingerprints used for optimistic
 * concurrency (labelFingerprint, metadata.fingerprint, IAM etag).
 */
import { createHash } from 'node:crypto';
import { conditionNotMet, invalidField } from './errors.js';

export type Labels = Record<string, string>;

const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;

/** Validates labels as Compute Engine does (lowercase keys/values, `-` and `_`, <= 64 labels). */
export function checkLabels(field: string, labels: unknown): Labels {
  if (labels === undefined || labels === null) return {};
  if (typeof labels !== 'object' || Array.isArray(labels)) throw invalidField(field, labels, 'Labels must be a map.');
  const out: Labels = {};
  const entries = Object.entries(labels as Record<string, unknown>);
  if (entries.length > 64) throw invalidField(field, '', 'Resources can have at most 64 labels.');
  for (const [key, value] of entries) {
    if (!LABEL_KEY.test(key)) {
      throw invalidField(
        `${field}.${key}`,
        key,
        'Label keys must start with a lowercase letter and contain only lowercase letters, digits, underscores and dashes (at most 63 characters).',
      );
    }
    if (typeof value !== 'string' || !LABEL_VALUE.test(value)) {
      throw invalidField(
        `${field}.${key}`,
        value,
        'Label values can contain only lowercase letters, digits, underscores and dashes (at most 63 characters).',
      );
    }
    out[key] = value;
  }
  return out;
}

/** 8-byte base64 fingerprint of any JSON value (stable key order for plain objects). */
export function fingerprint(value: unknown): string {
  const canonical = JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
  return createHash('sha256').update(canonical).digest().subarray(0, 8).toString('base64');
}

/** labelFingerprint must be present and current when labels are replaced. */
export function checkFingerprint(supplied: unknown, current: string, what: 'Labels' | 'Metadata' | 'Tags'): void {
  if (supplied !== current) {
    throw conditionNotMet(
      what === 'Labels'
        ? 'Labels fingerprint either invalid or resource labels have changed'
        : `Supplied fingerprint does not match current ${what.toLowerCase()} fingerprint.`,
    );
  }
}

export interface MetadataItem {
  key: string;
  value: string;
}

const METADATA_KEY = /^[a-zA-Z0-9-_]{1,128}$/;

export function checkMetadataItems(field: string, items: unknown): MetadataItem[] {
  if (items === undefined || items === null) return [];
  if (!Array.isArray(items)) throw invalidField(field, items, 'Must be a list.');
  const seen = new Set<string>();
  return items.map((item: unknown, i) => {
    const { key, value } = (item ?? {}) as { key?: unknown; value?: unknown };
    if (typeof key !== 'string' || !METADATA_KEY.test(key)) {
      throw invalidField(`${field}[${i}].key`, key, "Must be a match of regex '[a-zA-Z0-9-_]{1,128}'");
    }
    if (seen.has(key)) throw invalidField(`${field}[${i}].key`, key, 'Duplicate keys are not allowed.');
    seen.add(key);
    if (value !== undefined && typeof value !== 'string') throw invalidField(`${field}[${i}].value`, value, 'Must be a string.');
    return { key, value: value ?? '' };
  });
}

const TAG = /^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

export function checkTags(field: string, tags: unknown): string[] {
  if (tags === undefined || tags === null) return [];
  if (!Array.isArray(tags)) throw invalidField(field, tags, 'Must be a list.');
  return tags.map((tag: unknown, i) => {
    if (typeof tag !== 'string' || !TAG.test(tag)) {
      throw invalidField(`${field}[${i}]`, tag, "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'");
    }
    return tag;
  });
}

/** Positive integer from an int64 JSON field (the API sends int64 as strings, accepts numbers too). */
export function int64(field: string, value: unknown, fallback?: number): number {
  if (value === undefined || value === null || value === '') {
    if (fallback !== undefined) return fallback;
    throw invalidField(field, value, 'Must be a number.');
  }
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(n) || n < 0) throw invalidField(field, value, 'Must be a non-negative integer.');
  return n;
}

/** Resource ids: unsigned 64-bit integers, sent as decimal strings. */
export class IdSource {
  private next = 0n;
  constructor(private readonly base = 4_100_000_000_000_000_000n) {}
  id(): string {
    this.next += 1n;
    return String(this.base + this.next * 7_919n);
  }
}

/** RFC 3339 with a fixed -08:00 offset and milliseconds, the shape of creationTimestamp et al. */
export function timestamp(at = new Date()): string {
  const shifted = new Date(at.getTime() - 8 * 3600_000);
  return shifted.toISOString().replace('Z', '-08:00');
}
