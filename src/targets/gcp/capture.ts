/**
 * The capture and publish steps on GCE: images from the stopped instance's boot and data disks
 * (each in the ledger as an artifact before it is waited on; the family only on the root image),
 * then IAM bindings on both and deprecation of the family's previous image, the one the family
 * resolved to before this build's image joined it (never this build's own), and last the
 * `kiln-published` label that keeps a sweep from taking them.
 */
import type { GcpTargetPlan } from '../../definition/plan.js';
import type { BuildContext } from '../../pipeline/context.js';
import type { Artifact } from '../target.js';
import type { GceApi, Scope } from './client.js';
import { addImageLabels, deprecateImage, imageFromFamily, imagePath, shareImage, startImageInsert, waitImageReady, type ImageSpec } from './images.js';
import { diskPath } from './instance.js';
import { gceLabels, PUBLISHED_LABEL } from './labels.js';

const PREVIOUS = 'previousFamilyImage';

export async function captureImages(api: GceApi, ctx: BuildContext, t: GcpTargetPlan, project: string, timeoutMs: number): Promise<Artifact[]> {
  const scope: Scope = { log: ctx.log.line, signal: ctx.signal };
  const { names, publish } = t;
  if (publish.family) {
    const previous = await imageFromFamily(api, scope, project, publish.family);
    if (previous?.name && previous.name !== names.rootImage && previous.name !== names.dataImage) await ctx.state.setFacts({ [PREVIOUS]: previous.name });
  }
  const describe = (disk: string) => `kiln ${ctx.plan.definition.name} ${ctx.plan.version} size ${ctx.plan.size}, ${disk} disk (run ${ctx.plan.runId})`;
  const common = { project, storageLocations: publish.storageLocations, labels: gceLabels(ctx.plan.tags) };
  const specs: (ImageSpec & { disk: 'root' | 'data' })[] = [
    { ...common, disk: 'root', name: names.rootImage, sourceDisk: diskPath(project, t.zone, names.bootDisk), family: publish.family, description: describe('root') },
    { ...common, disk: 'data', name: names.dataImage, sourceDisk: diskPath(project, t.zone, names.dataDisk), description: describe('data') },
  ];
  const started = [];
  for (const spec of specs) {
    const { op } = await ctx.resources.create({ kind: 'image', name: spec.name, group: project, role: 'artifact' }, async () => ({
      id: imagePath(project, spec.name),
      op: await startImageInsert(api, scope, spec),
    }));
    started.push({ spec, op });
  }
  // Both images are made at once; wait for both to settle before reporting the first failure.
  const waits = started.map(({ spec, op }) => ({ spec, ready: waitImageReady(api, scope, project, spec.name, op, timeoutMs) }));
  const settled = await Promise.allSettled(waits.map((w) => w.ready));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  const artifacts: Artifact[] = [];
  for (const { spec, ready } of waits) {
    const image = await ready;
    const locations = image.storageLocations ?? spec.storageLocations;
    artifacts.push({ kind: 'image', id: image.selfLink ?? imagePath(project, spec.name), name: spec.name, disk: spec.disk, ...(locations.length === 1 ? { region: locations[0] } : {}) });
    ctx.log.line(`gcp: image ${spec.name} READY (${spec.disk} disk${spec.family ? `, family ${spec.family}` : ''})`);
  }
  return artifacts;
}

export async function publishImages(api: GceApi, ctx: BuildContext, t: GcpTargetPlan, project: string, captured: Artifact[], timeoutMs: number): Promise<void> {
  const scope: Scope = { log: ctx.log.line, signal: ctx.signal };
  const images = captured.filter((a) => a.kind === 'image' && a.name);
  for (const image of images) await shareImage(api, scope, project, String(image.name), t.publish.iam);
  if (t.publish.deprecatePrevious && t.publish.family) await deprecatePrevious(api, ctx, t.publish.family, project, images, timeoutMs);
  // Last: from now on the images are products, which `kiln cleanup --sweep` leaves alone.
  for (const image of images) await addImageLabels(api, scope, project, String(image.name), { [PUBLISHED_LABEL]: 'true' }, timeoutMs);
}

async function deprecatePrevious(api: GceApi, ctx: BuildContext, family: string, project: string, images: Artifact[], timeoutMs: number): Promise<void> {
  const previous = ctx.state.fact(PREVIOUS);
  const root = images.find((a) => a.disk === 'root');
  if (!previous || !root) {
    ctx.log.line(`gcp: family ${family} had no earlier image to deprecate`);
  } else if (images.some((a) => a.name === previous)) {
    ctx.log.line(`gcp: not deprecating ${previous}: it is this build's own image`);
  } else {
    await deprecateImage(api, { log: ctx.log.line, signal: ctx.signal }, project, previous, root.id, timeoutMs);
    ctx.log.line(`gcp: deprecated ${previous} in family ${family}, replaced by ${root.name}`);
  }
}
