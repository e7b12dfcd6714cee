/**
 * A customer's existing EBS volume as a validation instance's data disk: described first (it must
 * exist in the plan's region and be free; its zone decides where the instance runs), then attached
 * once the instance runs, and waited for until EC2 says `attached`. AttachVolume never sets
 * DeleteOnTermination, so terminating the instance leaves the volume as it was found.
 */
import { AttachVolumeCommand, DescribeVolumesCommand, type Volume } from '@aws-sdk/client-ec2';
import { KilnError } from '../../core/errors.js';
import { done, notYet, waitFor } from '../../core/wait.js';
import type { CallScope, Ec2Api } from './clients.js';
import { codeOf, isNotFound } from './errors.js';

const VOLUME_ID = /^vol-[0-9a-f]{8}([0-9a-f]{9})?$/;
const FIELD = '--data-disk';

export interface CustomerVolume {
  id: string;
  zone: string;
  sizeGb: number;
}

/** The volume `id` when it exists in the scope's region and is attached nowhere; else an INPUT error. */
export async function customerVolume(api: Ec2Api, scope: CallScope, id: string): Promise<CustomerVolume> {
  const context = { field: FIELD, resource: id, region: scope.region };
  if (!VOLUME_ID.test(id)) throw new KilnError('INPUT', `${FIELD}: "${id}" is not an EBS volume id (vol-...)`, context);
  let volume: Volume | undefined;
  try {
    const out = await api.call('DescribeVolumes', { ...scope, resource: id }, (c, o) => c.send(new DescribeVolumesCommand({ VolumeIds: [id] }), o));
    volume = out.Volumes?.[0];
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (!volume?.AvailabilityZone) {
    throw new KilnError('INPUT', `${FIELD}: volume ${id} does not exist in ${scope.region} (the plan's region)`, { ...context, code: 'InvalidVolume.NotFound' });
  }
  const attachedTo = volume.Attachments?.map((a) => a.InstanceId).filter(Boolean) ?? [];
  if (attachedTo.length > 0 || volume.State === 'in-use') {
    throw new KilnError('INPUT', `${FIELD}: volume ${id} is attached to ${attachedTo.join(', ') || 'an instance'}: detach it (stop its instance) first`, { ...context, code: 'VolumeInUse' });
  }
  if (volume.State !== 'available') {
    throw new KilnError('INPUT', `${FIELD}: volume ${id} is ${volume.State ?? 'in an unknown state'}, not available`, { ...context, code: 'IncorrectState' });
  }
  return { id, zone: volume.AvailabilityZone, sizeGb: volume.Size ?? 0 };
}

export interface Attachment {
  volumeId: string;
  instanceId: string;
  device: string;
}

/** Attaches the volume and waits until it is attached (a retried call that had worked is fine). */
export async function attachVolume(api: Ec2Api, scope: CallScope, attachment: Attachment, timeoutMs: number): Promise<void> {
  const { volumeId, instanceId, device } = attachment;
  const at = { ...scope, resource: volumeId };
  try {
    await api.call('AttachVolume', at, (c, o) => c.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: device }), o));
  } catch (err) {
    if (codeOf(err) !== 'VolumeInUse' || !(await attachedHere(api, at, attachment))) throw err;
  }
  await waitFor(
    async () => {
      const state = await attachmentState(api, at, attachment);
      if (state === 'attached') return done(true);
      if (state === 'detaching' || state === 'detached') {
        throw new KilnError('CLOUD', `EC2: volume ${volumeId} is ${state} from ${instanceId} instead of attaching`, { resource: volumeId, region: scope.region, code: 'IncorrectState' });
      }
      return notYet(state ?? 'no attachment listed yet');
    },
    { what: `volume ${volumeId} to be attached to ${instanceId} at ${device}`, timeoutMs, initialDelayMs: api.timing.pollMs, maxDelayMs: 15_000, signal: scope.signal },
  );
}

async function attachedHere(api: Ec2Api, scope: CallScope, attachment: Attachment): Promise<boolean> {
  return (await attachmentState(api, scope, attachment)) !== undefined;
}

/** The state of this volume's attachment to this instance at this device; undefined when there is none. */
async function attachmentState(api: Ec2Api, scope: CallScope, attachment: Attachment): Promise<string | undefined> {
  const out = await api.call('DescribeVolumes', scope, (c, o) => c.send(new DescribeVolumesCommand({ VolumeIds: [attachment.volumeId] }), o));
  const found = out.Volumes?.[0]?.Attachments?.find((a) => a.InstanceId === attachment.instanceId && a.Device === attachment.device);
  return found ? (found.State ?? 'attaching') : undefined;
}
