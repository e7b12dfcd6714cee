/**
 * AMIs and their snapshots: CreateImage from the stopped instance (tagged, with both volumes),
 * learning the snapshot ids, waiting for `available`, and deleting an AMI (by id, or by its name when
 * the create call's answer was lost) together with its snapshots.
 */
import {
  CreateImageCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  waitForImageAvailable,
  type DescribeImagesCommandOutput,
  type EC2Client,
  type Image,
} from '@aws-sdk/client-ec2';
import { KilnError } from '../../core/errors.js';
import { done, notYet, waitFor } from '../../core/wait.js';
import type { CallScope, Ec2Api } from './clients.js';
import { codeOf, isNotFound } from './errors.js';
import { isOurs, tagSpecs } from './tagging.js';

export interface CaptureSpec {
  instanceId: string;
  name: string;
  description: string;
  build: string;
  tags: Record<string, string>;
}

/** CreateImage without reboot (the instance is stopped); returns the AMI id. */
export async function createImage(api: Ec2Api, scope: CallScope, spec: CaptureSpec): Promise<string> {
  try {
    const out = await api.call('CreateImage', scope, (c, o) =>
      c.send(
        new CreateImageCommand({
          InstanceId: spec.instanceId,
          Name: spec.name,
          Description: spec.description,
          NoReboot: true,
          TagSpecifications: tagSpecs(['image', 'snapshot'], spec.tags, spec.name),
        }),
        o,
      ),
    );
    if (!out.ImageId) throw new KilnError('CLOUD', `EC2 CreateImage returned no id for ${spec.name}`, { resource: spec.name, region: scope.region, code: 'NoId' });
    return out.ImageId;
  } catch (err) {
    // A retried call whose first attempt had worked: the name is taken, by our own image.
    if (codeOf(err) !== 'InvalidAMIName.Duplicate') throw err;
    const image = await findOwnImage(api, scope, spec.name);
    if (!image?.ImageId || !isOurs(image.Tags, spec.build)) throw err;
    return image.ImageId;
  }
}

/** This account's image of that name in the region (names are unique per account and region). */
export async function findOwnImage(api: Ec2Api, scope: CallScope, name: string): Promise<Image | undefined> {
  const out = await api.call('DescribeImages', scope, (c, o) => c.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [name] }] }), o));
  return out.Images?.[0];
}

export async function describeImage(api: Ec2Api, scope: CallScope, id: string, since?: number): Promise<Image | undefined> {
  const send = (c: EC2Client, o: { abortSignal?: AbortSignal }) => c.send(new DescribeImagesCommand({ ImageIds: [id] }), o);
  const at = { ...scope, resource: id };
  try {
    const out = since === undefined ? await api.call('DescribeImages', at, send) : await api.callVisible('DescribeImages', at, send, since);
    return out.Images?.[0];
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export interface ImageSnapshot {
  device: string;
  snapshotId: string;
}

/** The snapshot of each EBS mapping, once EC2 lists all `expected` of them (pending images may not yet). */
export async function imageSnapshots(api: Ec2Api, scope: CallScope, imageId: string, expected: number): Promise<ImageSnapshot[]> {
  const since = Date.now();
  return waitFor(
    async () => {
      const image = await describeImage(api, scope, imageId, since);
      const snapshots = snapshotsOf(image);
      return snapshots.length >= expected ? done(snapshots) : notYet(image ? `${snapshots.length} snapshot(s), image ${image.State}` : 'image not visible');
    },
    { what: `the snapshots of ${imageId}`, timeoutMs: api.timing.consistencyMs, initialDelayMs: api.timing.pollMs, maxDelayMs: 15_000, signal: scope.signal },
  );
}

function snapshotsOf(image: Image | undefined): ImageSnapshot[] {
  return (image?.BlockDeviceMappings ?? []).flatMap((m) => (m.Ebs?.SnapshotId && m.DeviceName ? [{ device: m.DeviceName, snapshotId: m.Ebs.SnapshotId }] : []));
}

export async function waitAvailable(api: Ec2Api, scope: CallScope, imageId: string, timeoutMs: number): Promise<void> {
  await api.waitUntil(waitForImageAvailable, { ImageIds: [imageId] }, {
    ...scope,
    resource: imageId,
    what: `image ${imageId} to be available`,
    timeoutMs,
    describeFailure: (reason) => {
      if (reason instanceof Error) return `${reason.name}: ${reason.message}`;
      const image = (reason as DescribeImagesCommandOutput | undefined)?.Images?.[0];
      return `the image is ${image?.State ?? 'gone'}${image?.StateReason?.Message ? ` (${image.StateReason.Message})` : ''}`;
    },
  });
}

/**
 * Deregisters an AMI (found by id, else by name) and deletes its snapshots. Not found is success;
 * within the consistency window after `since` a missing image is looked for again first.
 */
export async function deleteImage(api: Ec2Api, scope: CallScope, ref: { id?: string; name: string }, since: number, timeoutMs: number): Promise<void> {
  const image = ref.id ? await describeImage(api, scope, ref.id, since) : await findByNameWithin(api, scope, ref.name, since);
  if (!image?.ImageId) return;
  if (image.State === 'deregistered') return deleteSnapshots(api, scope, snapshotsOf(image));
  const id = image.ImageId;
  const deregister = () => api.call('DeregisterImage', { ...scope, resource: id }, (c, o) => c.send(new DeregisterImageCommand({ ImageId: id, DeleteAssociatedSnapshots: true }), o));
  try {
    await deregister();
  } catch (err) {
    if (isNotFound(err)) return deleteSnapshots(api, scope, snapshotsOf(image));
    if (image.State !== 'pending') throw err;
    // Some regions refuse to deregister an image still being made: wait for it to settle first.
    await waitFor(async () => ((await describeImage(api, scope, id))?.State === 'pending' ? notYet('pending') : done(true)), {
      what: `image ${id} to leave pending`,
      timeoutMs,
      initialDelayMs: api.timing.pollMs,
      maxDelayMs: 30_000,
      signal: scope.signal,
    });
    await deregister().catch((again: unknown) => {
      if (!isNotFound(again)) throw again;
    });
  }
  await deleteSnapshots(api, scope, snapshotsOf(image));
}

async function findByNameWithin(api: Ec2Api, scope: CallScope, name: string, since: number): Promise<Image | undefined> {
  const until = since + api.timing.consistencyMs;
  return waitFor(
    async () => {
      const image = await findOwnImage(api, scope, name);
      if (image || Date.now() >= until) return done(image);
      return notYet('no image of that name (yet)');
    },
    { what: `image ${name}`, timeoutMs: api.timing.consistencyMs + 1, initialDelayMs: api.timing.pollMs, maxDelayMs: 15_000, signal: scope.signal },
  );
}

/** Snapshots left after a deregistration (where DeleteAssociatedSnapshots did not take them). */
async function deleteSnapshots(api: Ec2Api, scope: CallScope, snapshots: ImageSnapshot[]): Promise<void> {
  for (const { snapshotId } of snapshots) {
    try {
      await api.call('DeleteSnapshot', { ...scope, resource: snapshotId }, (c, o) => c.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }), o));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

/**
 * Deletes a snapshot. One still used by an AMI of the same build (a snapshot's entry comes after its
 * image's in the ledger, so undo reaches it first) takes that AMI with it; anyone else's AMI is left
 * alone and the snapshot with it.
 */
export async function deleteSnapshot(api: Ec2Api, scope: CallScope, snapshotId: string, build: string, timeoutMs: number): Promise<void> {
  const attempt = () => api.call('DeleteSnapshot', { ...scope, resource: snapshotId }, (c, o) => c.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }), o));
  try {
    await attempt();
    return;
  } catch (err) {
    if (isNotFound(err)) return;
    if (codeOf(err) !== 'InvalidSnapshot.InUse') throw err;
    const out = await api.call('DescribeImages', { ...scope, resource: snapshotId }, (c, o) =>
      c.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'block-device-mapping.snapshot-id', Values: [snapshotId] }] }), o),
    );
    const users = out.Images ?? [];
    if (users.length === 0 || !users.every((image) => isOurs(image.Tags, build))) throw err;
    for (const image of users) await deleteImage(api, scope, { id: image.ImageId, name: image.Name ?? '' }, 0, timeoutMs);
  }
  try {
    await attempt();
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
