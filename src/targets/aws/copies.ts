/**
 * Publishing: CopyImage into every publish region at once (each through the destination region's
 * client, with a deterministic ClientToken so a retried call cannot make a second copy), each copy
 * and then its snapshots recorded as artifacts of that region before waiting for it; then launch
 * permissions (public and/or accounts) on the AMI in every region; last, the `kiln:published` tag
 * on every AMI and snapshot of the build, which keeps sweeps from taking them.
 */
import { CopyImageCommand, CreateTagsCommand, ModifyImageAttributeCommand, type LaunchPermission } from '@aws-sdk/client-ec2';
import { createHash } from 'node:crypto';
import { KilnError } from '../../core/errors.js';
import type { AwsTargetPlan } from '../../definition/plan.js';
import type { BuildContext } from '../../pipeline/context.js';
import type { Artifact } from '../target.js';
import type { Ec2Api } from './clients.js';
import { imageSnapshots, waitAvailable } from './image.js';
import { PUBLISHED_TAG, tagSpecs } from './tagging.js';

/** EC2 client tokens are at most 64 ASCII characters: long ones are shortened with a digest. */
export function clientToken(...parts: string[]): string {
  const token = parts.join('-');
  if (token.length <= 64) return token;
  return `${token.slice(0, 40)}-${createHash('sha256').update(token).digest('hex').slice(0, 23)}`;
}

export interface SourceImage {
  id: string;
  region: string;
  /** How many snapshots (EBS mappings) the image has: its copies have as many. */
  snapshots: number;
}

export async function copyToRegions(api: Ec2Api, ctx: BuildContext, t: AwsTargetPlan, source: SourceImage, timeoutMs: number): Promise<Artifact[]> {
  return allOrFirstError(
    t.publish.regions.map((region) => copyTo(api, ctx, t, source, region, timeoutMs)),
    (failed, all) => ctx.log.line(`aws: ${failed} of ${all} region copies failed`),
  );
}

/**
 * Like Promise.all, but settles every promise first: nothing started is still running (and maybe
 * still recording resources) when the step fails and undo begins.
 */
export async function allOrFirstError<T>(promises: Promise<T>[], onFailures?: (failed: number, all: number) => void): Promise<T[]> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed.length > 0) {
    if (failed.length > 1) onFailures?.(failed.length, settled.length);
    throw failed[0]?.reason;
  }
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

async function copyTo(api: Ec2Api, ctx: BuildContext, t: AwsTargetPlan, source: SourceImage, region: string, timeoutMs: number): Promise<Artifact> {
  const scope = { region, resource: t.names.image, signal: ctx.signal };
  const token = clientToken(ctx.plan.buildId, 'copy', region);
  const extra = { sourceImageId: source.id, sourceRegion: source.region, clientToken: token };
  const copy = await ctx.resources.create({ kind: 'image-copy', name: t.names.image, region, role: 'artifact', extra }, async () => {
    const out = await api.call('CopyImage', scope, (c, o) =>
      c.send(
        new CopyImageCommand({
          SourceImageId: source.id,
          SourceRegion: source.region,
          Name: t.names.image,
          Description: description(ctx),
          ClientToken: token,
          // Copies of encrypted snapshots are encrypted again with the destination's default EBS key
          // (a KMS key id is regional, so the plan's key cannot be named in another region).
          Encrypted: t.encrypted ? true : undefined,
          TagSpecifications: tagSpecs(['image', 'snapshot'], ctx.plan.tags, t.names.image),
        }),
        o,
      ),
    );
    if (!out.ImageId) throw new KilnError('CLOUD', `EC2 CopyImage returned no id in ${region}`, { resource: t.names.image, region, code: 'NoId' });
    return { id: out.ImageId };
  });
  ctx.log.line(`aws: copying ${source.id} to ${region} as ${copy.id}`);
  const snapshots = await imageSnapshots(api, { ...scope, resource: copy.id }, copy.id, source.snapshots);
  for (const s of snapshots) {
    await ctx.resources.adopt({ kind: 'snapshot', name: `${t.names.image} ${s.device}`, id: s.snapshotId, region, role: 'artifact', extra: { imageId: copy.id, device: s.device } });
  }
  await waitAvailable(api, { ...scope, resource: copy.id }, copy.id, timeoutMs);
  ctx.log.line(`aws: ${copy.id} available in ${region}`);
  return { kind: 'ami', id: copy.id, name: t.names.image, region, disk: 'both' };
}

export function description(ctx: BuildContext): string {
  return `${ctx.plan.definition.name} ${ctx.plan.version} (${ctx.plan.size}), built by kiln run ${ctx.plan.runId}`;
}

/** Launch permissions on one AMI: everyone (public) and/or the listed accounts. */
export async function share(api: Ec2Api, region: string, imageId: string, t: AwsTargetPlan, signal: AbortSignal): Promise<void> {
  const add: LaunchPermission[] = [...(t.publish.public ? [{ Group: 'all' as const }] : []), ...t.publish.accounts.map((UserId) => ({ UserId }))];
  if (add.length === 0) return;
  await api.callVisible('ModifyImageAttribute', { region, resource: imageId, signal }, (c, o) =>
    c.send(new ModifyImageAttributeCommand({ ImageId: imageId, LaunchPermission: { Add: add } }), o),
  );
}

/** Tags every artifact of the build (AMIs and their snapshots, in each region) `kiln:published=true`. */
export async function markPublished(api: Ec2Api, ctx: BuildContext): Promise<void> {
  const byRegion = new Map<string, string[]>();
  for (const e of ctx.resources.list()) {
    if (e.role === 'artifact' && e.id && e.region) byRegion.set(e.region, [...(byRegion.get(e.region) ?? []), e.id]);
  }
  await allOrFirstError(
    [...byRegion].map(([region, ids]) =>
      api.callVisible('CreateTags', { region, resource: ids.join(', '), signal: ctx.signal }, (c, o) =>
        c.send(new CreateTagsCommand({ Resources: ids, Tags: [{ Key: PUBLISHED_TAG, Value: 'true' }] }), o),
      ),
    ),
  );
}
