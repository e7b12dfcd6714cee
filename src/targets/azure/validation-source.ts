/**
 * What a validation instance boots from. The image: the build's managed image in the plan's
 * location, else its gallery image version (replicated there). Both carry the OS disk and the data
 * disk at the plan's LUN, and ARM does not let a VM leave an image's data disk out or attach
 * another disk at its LUN (once a VM lists data disks, every LUN of the image must be listed
 * FromImage: 400 InvalidParameter "StorageProfile.dataDisks.lun does not have required value(s) for
 * image specified in storage profile."). So with a customer's data disk the instance boots from an
 * image of the OS disk alone, made as a customer can: a managed disk from the image's OS disk
 * (FromImage, a user image or gallery image reference), then a generalized image of that disk.
 * Both are temporary and recorded before they are created; the image is tagged so that a sweep
 * takes it too (sweeps leave managed images alone otherwise).
 */
import { KilnError } from '../../core/errors.js';
import type { Artifact } from '../target.js';
import { arm } from './errors.js';
import { KIND, sameRegion } from './ids.js';
import { required } from './network.js';
import type { AzureStep } from './step.js';
import { TEMPORARY_IMAGE_TAG } from './tagged.js';

export interface InstanceImage {
  kind: 'managed-image' | 'gallery-version';
  id: string;
}

const MANAGED_IMAGE = /\/providers\/Microsoft\.Compute\/images\/[^/]+$/i;
const GALLERY_VERSION = /\/providers\/Microsoft\.Compute\/galleries\/[^/]+\/images\/[^/]+\/versions\/[^/]+$/i;

/** The image to launch from in `location`: a managed image there, else a gallery version replicated there. */
export function pickImage(images: Artifact[], location: string): InstanceImage {
  const here = images.filter((a) => !a.region || sameRegion(a.region, location));
  const managed = here.find((a) => MANAGED_IMAGE.test(a.id));
  if (managed) return { kind: 'managed-image', id: managed.id };
  const version = here.find((a) => GALLERY_VERSION.test(a.id));
  if (version) return { kind: 'gallery-version', id: version.id };
  const seen = images.map((a) => `${a.id}${a.region ? ` (${a.region})` : ''}`).join(', ') || 'none';
  throw new KilnError('VALIDATION', `no Azure managed image or gallery image version in ${location} to launch from; the images are: ${seen}`);
}

/** Names of the two temporary resources, after the instance's OS disk. */
export function osImageNames(s: AzureStep): { disk: string; image: string } {
  return { disk: `${s.t.names.osDisk}-source`, image: `${s.t.names.osDisk}-image` };
}

/** A generalized image holding only the OS disk of `image`; returns its id. */
export async function osOnlyImage(s: AzureStep, image: InstanceImage): Promise<string> {
  const { c, group, location, tags, call } = s;
  const names = osImageNames(s);
  const reference = image.kind === 'gallery-version' ? { galleryImageReference: { id: image.id } } : { imageReference: { id: image.id } };
  const disk = await s.record(KIND.disk, names.disk, async () => {
    const made = await arm('creating a disk from the image\'s OS disk', s.id('disk', names.disk), () =>
      c.compute.disks.beginCreateOrUpdateAndWait(group, names.disk, { location, tags, creationData: { createOption: 'FromImage', ...reference } }, call),
    );
    return { id: required(made.id, 'disk id'), generation: made.hyperVGeneration === 'V2' ? 'V2' : 'V1' };
  });
  const osImage = await s.record(KIND.image, names.image, async () => {
    const made = await arm('creating an image of the OS disk', s.id('image', names.image), () =>
      c.compute.images.beginCreateOrUpdateAndWait(
        group,
        names.image,
        {
          location,
          tags: { ...tags, [TEMPORARY_IMAGE_TAG]: 'true' },
          hyperVGeneration: disk.generation,
          storageProfile: { osDisk: { osType: 'Linux', osState: 'Generalized', managedDisk: { id: disk.id } } },
        },
        call,
      ),
    );
    return { id: required(made.id, 'image id') };
  });
  s.log(`image of the OS disk alone: ${osImage.id}`);
  return osImage.id;
}
