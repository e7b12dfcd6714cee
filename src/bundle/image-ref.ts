/**
 * Container image references, normalized the way containerd names images (and the way
 * provision/charts.sh's parse_ref does): `nginx:1.25` is `docker.io/library/nginx:1.25`, a missing
 * tag is `latest`. The bundle stores each image under a file name derived from the normalized name,
 * so the build VM finds it from the plan's reference alone.
 */
import { InputError } from '../core/errors.js';

export interface ImageRef {
  /** Registry host (and port): docker.io, ghcr.io, registry.example.com:5000. */
  registry: string;
  /** Repository path on the registry: library/nginx, org/app. */
  repository: string;
  tag?: string;
  /** Pinned manifest digest (sha256:...). */
  digest?: string;
  /** registry/repository[:tag][@digest], what containerd calls the image. */
  name: string;
}

const REFERENCE = /^[a-z0-9][a-z0-9./:_@-]*$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

export function parseImageRef(reference: string): ImageRef {
  if (!REFERENCE.test(reference)) throw new InputError({ field: 'image', message: `expected an image reference like docker.io/org/name:tag, found ${JSON.stringify(reference)}` });
  let rest = reference;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new InputError({ field: 'image', message: `${reference}: expected a sha256:<64 hex digits> digest, found ${JSON.stringify(digest)}` });
  }
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  let registry = 'docker.io';
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    rest = rest.slice(slash + 1);
  }
  let tag: string | undefined;
  const lastPart = rest.slice(rest.lastIndexOf('/') + 1);
  if (lastPart.includes(':')) {
    tag = lastPart.slice(lastPart.indexOf(':') + 1);
    rest = rest.slice(0, rest.length - tag.length - 1);
  }
  if (tag === undefined && !digest) tag = 'latest';
  if (registry === 'docker.io' && !rest.includes('/')) rest = `library/${rest}`;
  if (!rest || (tag !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(tag))) {
    throw new InputError({ field: 'image', message: `expected an image reference like docker.io/org/name:tag, found ${JSON.stringify(reference)}` });
  }
  const name = `${registry}/${rest}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
  return { registry, repository: rest, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}), name };
}

/** The archive's file name for an image: its normalized name with / : @ turned into _ (as charts.sh names it). */
export function imageFileName(ref: ImageRef): string {
  return `${ref.name.replace(/[/:@]/g, '_')}.tar`;
}
