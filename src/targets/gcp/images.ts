/**
 * Images: the base image from its family, images from the stopped instance's disks (insert, then
 * wait for the global operation and for READY), IAM sharing (read-modify-write with the policy's
 * etag, again on a concurrent change), labels added the same way, deprecation of the family's
 * previous image, and delete.
 */
import type { protos } from '@google-cloud/compute';
import { KilnError } from '../../core/errors.js';
import { done, notYet, waitFor } from '../../core/wait.js';
import type { GceApi, Operation, Scope } from './client.js';
import { hasReason, isNotFound } from './errors.js';
import { runOperation, startOperation, waitOperation } from './operations.js';

type Image = protos.google.cloud.compute.v1.IImage;
type Binding = protos.google.cloud.compute.v1.IBinding;

export const imagePath = (project: string, name: string): string => `projects/${project}/global/images/${name}`;

/** The family's current image (newest READY, not deprecated), or undefined when the family is empty. */
export async function imageFromFamily(api: GceApi, scope: Scope, project: string, family: string): Promise<Image | undefined> {
  try {
    const [image] = await api.call(scope, 'finding the image of family', `projects/${project}/global/images/family/${family}`, () =>
      api.clients.images.getFromFamily({ project, family }),
    );
    return image;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export interface ImageSpec {
  project: string;
  name: string;
  /** Path of the source disk: projects/<p>/zones/<z>/disks/<name>. */
  sourceDisk: string;
  family?: string;
  description: string;
  storageLocations: string[];
  labels: Record<string, string>;
}

/** Starts images.insert from a disk; returns the operation to wait on (the image exists once accepted). */
export async function startImageInsert(api: GceApi, scope: Scope, spec: ImageSpec): Promise<Operation> {
  return startOperation(api, scope, { project: spec.project, what: 'creating image', resource: imagePath(spec.project, spec.name) }, (requestId) =>
    api.clients.images.insert({
      project: spec.project,
      requestId,
      imageResource: {
        name: spec.name,
        description: spec.description,
        sourceDisk: spec.sourceDisk,
        ...(spec.family ? { family: spec.family } : {}),
        ...(spec.storageLocations.length > 0 ? { storageLocations: spec.storageLocations } : {}),
        labels: spec.labels,
      },
    }),
  );
}

/** Waits for the insert operation, then for the image to be READY; returns the image. */
export async function waitImageReady(api: GceApi, scope: Scope, project: string, name: string, op: Operation, timeoutMs: number): Promise<Image> {
  const resource = imagePath(project, name);
  const deadline = Date.now() + timeoutMs;
  await waitOperation(api, scope, { project, what: 'creating image', resource }, op, timeoutMs);
  return waitFor(
    async () => {
      const [image] = await api.call(scope, 'reading image', resource, () => api.clients.images.get({ project, image: name }));
      if (image.status === 'FAILED') throw new KilnError('CLOUD', `GCE: image ${resource} FAILED`, { resource, reason: 'imageFailed' });
      return image.status === 'READY' ? done(image) : notYet(image.status);
    },
    { what: `image ${resource} to be READY`, timeoutMs: Math.max(1, deadline - Date.now()), signal: scope.signal, initialDelayMs: api.pollMs, maxDelayMs: 30_000 },
  );
}

/** Bindings plus `additions`; undefined when nothing changes. Conditional bindings are left alone. */
export function mergeBindings(bindings: Binding[], additions: { role: string; members: string[] }[]): Binding[] | undefined {
  const merged = bindings.map((b) => ({ ...b, members: [...(b.members ?? [])] }));
  let changed = false;
  for (const { role, members } of additions) {
    let binding = merged.find((b) => b.role === role && !b.condition);
    if (!binding) merged.push((binding = { role, members: [] }));
    for (const member of members) {
      if (binding.members.includes(member)) continue;
      binding.members.push(member);
      changed = true;
    }
  }
  return changed ? merged : undefined;
}

const IAM_ATTEMPTS = 5;

/** Adds the bindings to the image's IAM policy (read-modify-write; retried on a concurrent change). */
export async function shareImage(api: GceApi, scope: Scope, project: string, name: string, additions: { role: string; members: string[] }[]): Promise<void> {
  if (additions.length === 0) return;
  const resource = imagePath(project, name);
  for (let attempt = 1; ; attempt++) {
    const [policy] = await api.call(scope, 'reading the IAM policy of', resource, () => api.clients.images.getIamPolicy({ project, resource: name }));
    const bindings = mergeBindings(policy.bindings ?? [], additions);
    if (!bindings) return;
    const clean = bindings.map((b) => ({ role: b.role, members: b.members, ...(b.condition ? { condition: b.condition } : {}) }));
    try {
      await api.call(scope, 'setting the IAM policy of', resource, () =>
        api.clients.images.setIamPolicy({
          project,
          resource: name,
          globalSetPolicyRequestResource: { policy: { bindings: clean, etag: policy.etag, ...(policy.version ? { version: policy.version } : {}) } },
        }),
      );
      scope.log(`gcp: shared ${resource}: ${additions.map((a) => `${a.role} to ${a.members.join(', ')}`).join('; ')}`);
      return;
    } catch (err) {
      if (!hasReason(err, 'conditionNotMet') || attempt >= IAM_ATTEMPTS) throw err;
      scope.log(`gcp: the IAM policy of ${resource} changed meanwhile; reading it again`);
    }
  }
}

const LABEL_ATTEMPTS = 5;

/**
 * Adds `labels` to the image's (read-modify-write with the labelFingerprint; again on a concurrent
 * change). kiln marks a finished build's images this way, so that a sweep never takes a product.
 */
export async function addImageLabels(api: GceApi, scope: Scope, project: string, name: string, labels: Record<string, string>, timeoutMs: number): Promise<void> {
  const resource = imagePath(project, name);
  for (let attempt = 1; ; attempt++) {
    const [image] = await api.call(scope, 'reading image', resource, () => api.clients.images.get({ project, image: name }));
    if (Object.entries(labels).every(([k, v]) => image.labels?.[k] === v)) return;
    try {
      await runOperation(api, scope, { project, what: 'labelling image', resource }, timeoutMs, () =>
        api.clients.images.setLabels({
          project,
          resource: name,
          globalSetLabelsRequestResource: { labels: { ...image.labels, ...labels }, labelFingerprint: image.labelFingerprint },
        }),
      );
      return;
    } catch (err) {
      if (!hasReason(err, 'conditionNotMet') || attempt >= LABEL_ATTEMPTS) throw err;
      scope.log(`gcp: the labels of ${resource} changed meanwhile; reading them again`);
    }
  }
}

/** Marks `name` DEPRECATED with `replacement` (a path or URL of the new image). */
export async function deprecateImage(api: GceApi, scope: Scope, project: string, name: string, replacement: string, timeoutMs: number): Promise<void> {
  const resource = imagePath(project, name);
  await runOperation(api, scope, { project, what: 'deprecating image', resource }, timeoutMs, (requestId) =>
    api.clients.images.deprecate({ project, image: name, requestId, deprecationStatusResource: { state: 'DEPRECATED', replacement } }),
  );
}

/** Deletes the image; false when it was not there. */
export async function deleteImage(api: GceApi, scope: Scope, project: string, name: string, timeoutMs: number): Promise<boolean> {
  const resource = imagePath(project, name);
  try {
    await runOperation(api, scope, { project, what: 'deleting image', resource }, timeoutMs, (requestId) =>
      api.clients.images.delete({ project, image: name, requestId }),
    );
    return true;
  } catch (err) {
    if (!isNotFound(err)) throw err;
    return false;
  }
}
