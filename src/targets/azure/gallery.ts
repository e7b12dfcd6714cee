/**
 * Azure Compute Gallery publishing. The gallery's resource group, the gallery and the image
 * definition are shared and long-lived: created when missing (tagged only with the definition's
 * name, never with a run's tags, so no sweep by run takes them), and never recorded in the ledger,
 * so no cleanup deletes them. Only the image version this build creates is recorded (as an
 * artifact). A version that exists already is never replaced. The version replicates to the plan's
 * regions with their replica counts; capture waits until every region reports Completed.
 */
import type { GalleryImageVersion, TargetRegion } from '@azure/arm-compute';
import { KilnError } from '../../core/errors.js';
import { SharedWork } from '../../core/shared-work.js';
import { done, notYet, waitFor } from '../../core/wait.js';
import type { AzureTargetPlan } from '../../definition/plan.js';
import type { Artifact } from '../target.js';
import { arm, armGet } from './errors.js';
import { groupId, KIND, resourceId, sameRegion } from './ids.js';
import { required } from './network.js';
import type { AzureStep } from './step.js';

type GalleryPlan = NonNullable<AzureTargetPlan['publish']['gallery']>;

export const DEFAULT_REPLICATION_TIMEOUT_MS = 90 * 60_000;
const PROGRESS_EVERY_MS = 60_000;

export function galleryPlan(s: AzureStep): GalleryPlan {
  const g = s.t.publish.gallery;
  if (!g) throw new KilnError('INTERNAL', 'no gallery in the plan');
  return g;
}

/**
 * Makes sure the gallery's group, the gallery and the image definition exist, and that no version of
 * this number does. Returns the gallery's region (where the version must be made). The group and
 * the gallery are made once for all builds of the run that share `shared` (every size publishes to
 * the same gallery; concurrent creates of one resource race in ARM).
 */
export async function ensureGallery(s: AzureStep, generation: 'V1' | 'V2', shared = new SharedWork()): Promise<string> {
  const g = galleryPlan(s);
  const { c, call } = s;
  const sharedTags = { 'kiln:definition': s.ctx.plan.definition.name };
  const galleryId = resourceId(c.subscription, g.resourceGroup, 'Microsoft.Compute/galleries', [g.name]);
  const location = await shared.run(galleryId, () => ensureGalleryHome(s, galleryId), s.ctx.signal);
  if (!sameRegion(location, s.location)) {
    throw new KilnError('INPUT', `gallery ${g.name} is in ${location} but the build runs in ${s.location}; a version must be made in the gallery's region from an image in that region`, {
      field: 'targets.azure.location',
      resource: galleryId,
    });
  }

  const definitionId = `${galleryId}/images/${g.imageDefinition}`;
  const existing = await armGet('reading image definition', definitionId, () => c.compute.galleryImages.get(g.resourceGroup, g.name, g.imageDefinition, call));
  if (!existing) {
    await arm('creating image definition', definitionId, () =>
      c.compute.galleryImages.beginCreateOrUpdateAndWait(
        g.resourceGroup,
        g.name,
        g.imageDefinition,
        { location, tags: sharedTags, osType: 'Linux', osState: 'Generalized', hyperVGeneration: generation, architecture: 'x64', identifier: { ...g.identifier } },
        call,
      ),
    );
    s.log(`created image definition ${g.imageDefinition} (${generation}) in gallery ${g.name} (shared: kiln never deletes it)`);
  } else if (existing.osState !== 'Generalized' || (existing.hyperVGeneration ?? 'V1') !== generation) {
    throw new KilnError('INPUT', `image definition ${g.imageDefinition} is ${existing.osState} ${existing.hyperVGeneration ?? 'V1'}; this build makes a Generalized ${generation} image`, {
      resource: definitionId,
    });
  }

  const versionId = `${definitionId}/versions/${g.version}`;
  const clash = await armGet('reading image version', versionId, () => c.compute.galleryImageVersions.get(g.resourceGroup, g.name, g.imageDefinition, g.version, call));
  if (clash) {
    throw new KilnError('CLOUD', `gallery image version ${g.name}/${g.imageDefinition}/${g.version} exists already; published versions are never replaced (delete it or build another version)`, {
      resource: versionId,
      code: 'GalleryImageVersionExists',
    });
  }
  return location;
}

/** The gallery's group and the gallery, created when missing; returns the gallery's region. */
async function ensureGalleryHome(s: AzureStep, galleryId: string): Promise<string> {
  const g = galleryPlan(s);
  const { c } = s;
  // Shared by every build waiting for it: no one build's abort signal stops it.
  const call = c.call();
  const sharedTags = { 'kiln:definition': s.ctx.plan.definition.name };
  const rgId = groupId(c.subscription, g.resourceGroup);
  if (!(await armGet('reading resource group', rgId, () => c.resources.resourceGroups.get(g.resourceGroup, call)))) {
    await arm('creating resource group', rgId, () => c.resources.resourceGroups.createOrUpdate(g.resourceGroup, { location: s.location, tags: sharedTags }, call));
    s.log(`created resource group ${g.resourceGroup} for the gallery (shared: kiln never deletes it)`);
  }
  let gallery = await armGet('reading gallery', galleryId, () => c.compute.galleries.get(g.resourceGroup, g.name, call));
  if (!gallery) {
    gallery = await arm('creating gallery', galleryId, () =>
      c.compute.galleries.beginCreateOrUpdateAndWait(g.resourceGroup, g.name, { location: s.location, tags: sharedTags, description: 'Images baked by kiln' }, call),
    );
    s.log(`created gallery ${g.name} in ${s.location} (shared: kiln never deletes it)`);
  }
  return required(gallery.location, `location of gallery ${g.name}`);
}

/** Target regions from the plan, with the gallery's own region added when it is missing. */
export function targetRegions(g: GalleryPlan, home: string): TargetRegion[] {
  const regions = g.replicationRegions.map((r) => ({ name: r.region, regionalReplicaCount: r.replicas }));
  if (!regions.some((r) => sameRegion(r.name, home))) regions.unshift({ name: home, regionalReplicaCount: 1 });
  return regions;
}

/** Creates the image version from `source` (a managed image, or the generalized VM) and waits for replication. */
export async function createVersion(s: AzureStep, home: string, source: { imageId?: string; vmId: string }, replicationTimeoutMs = DEFAULT_REPLICATION_TIMEOUT_MS): Promise<Artifact[]> {
  const g = galleryPlan(s);
  const { c } = s;
  const label = `${g.name}/${g.imageDefinition}/${g.version}`;
  const id = s.id('gallery-image-version', [g.name, g.imageDefinition, g.version], g.resourceGroup);
  const regions = targetRegions(g, home);
  const body: GalleryImageVersion = {
    location: home,
    tags: s.tags,
    publishingProfile: { targetRegions: regions, excludeFromLatest: false },
    storageProfile: { source: source.imageId ? { id: source.imageId } : { virtualMachineId: source.vmId } },
  };
  s.log(`publishing ${label} from ${source.imageId ? 'the managed image' : 'the VM'}, replicating to ${regions.map((r) => `${r.name} x${r.regionalReplicaCount}`).join(', ')}`);
  const version = await s.record(
    KIND.galleryVersion,
    label,
    async () => {
      // Replication can take an hour: say how far it got now and then while the poller waits.
      const progress = setInterval(() => void replicationSummary(s, g).then((seen) => seen && s.log(`replicating ${label}: ${seen}`), () => undefined), PROGRESS_EVERY_MS);
      try {
        const made = await arm('creating gallery image version', id, () =>
          c.compute.galleryImageVersions.beginCreateOrUpdateAndWait(g.resourceGroup, g.name, g.imageDefinition, g.version, body, s.call),
        );
        return { id: required(made.id, 'image version id') };
      } finally {
        clearInterval(progress);
      }
    },
    { group: g.resourceGroup, region: home, role: 'artifact', extra: { gallery: g.name, definition: g.imageDefinition, version: g.version } },
  );
  await waitReplicated(s, label, id, regions, replicationTimeoutMs);
  return regions.map((r) => ({ kind: 'azure-gallery-image-version', id: version.id, name: label, region: r.name, disk: 'both' as const }));
}

async function replicationSummary(s: AzureStep, g: GalleryPlan): Promise<string | undefined> {
  const v = await s.c.compute.galleryImageVersions.get(g.resourceGroup, g.name, g.imageDefinition, g.version, { ...s.call, expand: 'ReplicationStatus' });
  return v.replicationStatus?.summary?.map((x) => `${x.region}: ${x.state} ${x.progress ?? 0}%`).join(', ');
}

/** Waits until every target region's replication is Completed; a Failed region fails the build. */
async function waitReplicated(s: AzureStep, label: string, id: string, regions: TargetRegion[], timeoutMs: number): Promise<void> {
  const g = galleryPlan(s);
  await waitFor(
    async () => {
      const v = await arm('reading replication status', id, () =>
        s.c.compute.galleryImageVersions.get(g.resourceGroup, g.name, g.imageDefinition, g.version, { ...s.call, expand: 'ReplicationStatus' }),
      );
      const summary = v.replicationStatus?.summary ?? [];
      const failed = summary.find((r) => r.state === 'Failed');
      if (failed || v.provisioningState === 'Failed') {
        throw new KilnError('CLOUD', `replication of ${label} failed${failed ? ` in ${failed.region}: ${failed.details ?? ''}` : ''}`, { resource: id, code: 'ReplicationFailed' });
      }
      const pending = regions.filter((r) => !summary.some((x) => x.region && sameRegion(x.region, r.name) && x.state === 'Completed'));
      if (pending.length === 0 && v.provisioningState === 'Succeeded') return done(undefined);
      return notYet(summary.map((x) => `${x.region}: ${x.state} ${x.progress ?? 0}%`).join(', ') || v.provisioningState);
    },
    {
      what: `replication of ${label} to ${regions.map((r) => r.name).join(', ')}`,
      timeoutMs,
      initialDelayMs: s.call.updateIntervalInMs,
      maxDelayMs: Math.max(s.call.updateIntervalInMs, 30_000),
      signal: s.ctx.signal,
      onPoll: (_, seen) => s.log(`replicating ${label}: ${String(seen)}`),
    },
  );
  s.log(`${label} replicated to ${regions.map((r) => r.name).join(', ')}`);
}
