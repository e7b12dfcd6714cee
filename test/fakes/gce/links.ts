/**
 * Resource URLs: the selfLinks the fake hands out (the real `https://www.googleapis.com/compute/v1/`
 * prefix, so a driver sees the same strings it would see in production) and parsing of the
 * references a request may carry: full URLs, `projects/p/...` paths and project-relative paths.
 */
import { invalidField } from './errors.js';

export const API_ROOT = 'https://www.googleapis.com/compute/v1/';

export const projectPath = (project: string) => `projects/${project}`;
export const zonePath = (project: string, zone: string) => `projects/${project}/zones/${zone}`;
export const globalPath = (project: string, collection: string, name: string) =>
  `projects/${project}/global/${collection}/${name}`;
export const zonalPath = (project: string, zone: string, collection: string, name: string) =>
  `projects/${project}/zones/${zone}/${collection}/${name}`;

export const link = (resourcePath: string) => API_ROOT + resourcePath;

export interface ParsedRef {
  project: string;
  /** Path segments after `projects/<project>/`. */
  segments: string[];
}

/**
 * Parses a reference into project + segments, or undefined when it is not a URL or path at all.
 * `defaultProject` is used for project-relative paths such as `zones/z/disks/d`.
 */
export function parseRef(ref: string, defaultProject: string): ParsedRef | undefined {
  let rest = ref.trim();
  const url = /^https?:\/\/[^/]+\/compute\/(?:v1|beta|alpha)\/(.*)$/.exec(rest);
  if (url) rest = url[1] ?? '';
  else if (/^https?:/.test(rest)) return undefined;
  const segments = rest.split('/').filter((s) => s.length > 0);
  if (segments[0] === 'projects') {
    const project = segments[1];
    if (!project) return undefined;
    return { project, segments: segments.slice(2) };
  }
  if (segments[0] === 'global' || segments[0] === 'zones' || segments[0] === 'regions') {
    return { project: defaultProject, segments };
  }
  return undefined;
}

export interface ZonalRef {
  project: string;
  zone: string;
  name: string;
}

/** `zones/<zone>/<collection>/<name>` in any accepted form; throws `invalid ... The URL is malformed.` */
export function zonalRef(field: string, ref: unknown, collection: string, defaultProject: string): ZonalRef {
  if (typeof ref !== 'string') throw invalidField(field, ref, 'The URL is malformed.');
  const parsed = parseRef(ref, defaultProject);
  const [zones, zone, coll, name, ...extra] = parsed?.segments ?? [];
  if (!parsed || zones !== 'zones' || !zone || coll !== collection || !name || extra.length > 0) {
    throw invalidField(field, ref, 'The URL is malformed.');
  }
  return { project: parsed.project, zone, name };
}

export interface GlobalRef {
  project: string;
  name: string;
  /** For images: `global/images/family/<family>` references a family, not an image. */
  family?: string;
}

/** `global/<collection>/<name>` in any accepted form; throws `invalid ... The URL is malformed.` */
export function globalRef(field: string, ref: unknown, collection: string, defaultProject: string): GlobalRef {
  if (typeof ref !== 'string') throw invalidField(field, ref, 'The URL is malformed.');
  const parsed = parseRef(ref, defaultProject);
  const [global, coll, name, family, ...extra] = parsed?.segments ?? [];
  if (!parsed || global !== 'global' || coll !== collection || !name || extra.length > 0) {
    throw invalidField(field, ref, 'The URL is malformed.');
  }
  if (collection === 'images' && name === 'family' && family) {
    return { project: parsed.project, name: '', family };
  }
  if (family !== undefined) throw invalidField(field, ref, 'The URL is malformed.');
  return { project: parsed.project, name };
}

/** Last path segment of a URL or path (`.../machineTypes/e2-standard-2` -> `e2-standard-2`). */
export const lastSegment = (ref: string) => ref.split('/').filter(Boolean).pop() ?? ref;

/** Name rule for every Compute Engine resource. */
export const NAME_PATTERN = /^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
export const NAME_REGEX_TEXT = '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)';

export function checkName(field: string, name: unknown): string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw invalidField(field, name, `Must be a match of regex '${NAME_REGEX_TEXT}'`);
  }
  return name;
}

export const ZONE_PATTERN = /^[a-z]+-[a-z]+[0-9]+-[a-z]$/;

export function checkZone(zone: string): void {
  if (!ZONE_PATTERN.test(zone)) throw invalidField('zone', zone, 'Unknown zone.');
}
