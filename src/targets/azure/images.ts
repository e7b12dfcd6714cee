/**
 * The managed image: captured from the generalized VM (it holds the OS disk and the data disk at its
 * LUN), tagged, recorded as an artifact. It must outlive the build, so it goes into the gallery's
 * resource group when there is a gallery, else the build's group; a temporary build group that holds
 * the only image is kept (re-recorded as an artifact) instead of deleted.
 */
import type { Artifact } from '../target.js';
import { arm } from './errors.js';
import { groupId, KIND } from './ids.js';
import { required } from './network.js';
import type { AzureStep } from './step.js';
import { HOLDS_TAG } from './tagged.js';

/** Hyper-V generation of the VM's OS disk (V1 or V2), which image and definition must match. */
export async function hyperVGeneration(s: AzureStep): Promise<'V1' | 'V2'> {
  const name = s.t.names.osDisk;
  const disk = await arm('reading OS disk', s.id('disk', name), () => s.c.compute.disks.get(s.group, name, s.call));
  return disk.hyperVGeneration === 'V2' ? 'V2' : 'V1';
}

/** Where the managed image lives. */
export function imageGroup(s: AzureStep): string {
  return s.t.publish.gallery?.resourceGroup ?? s.group;
}

export async function createManagedImage(s: AzureStep, vmId: string, generation: 'V1' | 'V2'): Promise<Artifact> {
  const { t, c } = s;
  const group = imageGroup(s);
  const name = t.names.image;
  const image = await s.record(
    KIND.image,
    name,
    async () => {
      const made = await arm('creating managed image', s.id('image', name, group), () =>
        c.compute.images.beginCreateOrUpdateAndWait(group, name, { location: s.location, tags: s.tags, sourceVirtualMachine: { id: vmId }, hyperVGeneration: generation }, s.call),
      );
      return { id: required(made.id, 'image id') };
    },
    { group, role: 'artifact' },
  );
  s.log(`managed image ${image.id}`);
  if (group === s.group && t.resourceGroup.temporary) await keepBuildGroup(s);
  return { kind: 'azure-managed-image', id: image.id, name, region: s.location, disk: 'both' };
}

/**
 * The temporary build group holds the image: record it again as an artifact (so a successful build
 * keeps it; its temporary contents are still deleted one by one) and forget the temporary entry.
 */
async function keepBuildGroup(s: AzureStep): Promise<void> {
  const { ctx, c, group } = s;
  const temporary = ctx.resources.list(KIND.group).filter((e) => e.name === group && e.role === 'temporary');
  // Marked, so that a sweep by tag does not take the group with the image in it.
  await arm('marking resource group', groupId(c.subscription, group), () =>
    c.resources.resourceGroups.createOrUpdate(group, { location: s.location, tags: { ...s.tags, [HOLDS_TAG]: 'managed-image' } }, s.call),
  );
  await ctx.resources.adopt({ kind: KIND.group, name: group, id: groupId(c.subscription, group), group, region: s.location, role: 'artifact', extra: { subscription: c.subscription, holds: 'managed image' } });
  for (const entry of temporary) await ctx.resources.forget(entry);
  s.log(`resource group ${group} is kept after the build: it holds the managed image (no gallery resource group in the plan)`);
}
