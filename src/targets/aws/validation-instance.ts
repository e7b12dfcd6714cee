/**
 * The validation instance (`kiln validate`, `kiln build --validate`): launched from the build's AMI
 * in the plan's region as a customer would, with its root and data volumes made from the AMI's
 * snapshots, and temporary access of its own named after the validation build id: a key pair
 * holding only the validation key, and a security group letting SSH in from the builder only.
 *
 * With a customer's data volume (`--data-disk vol-...`) the AMI's data volumes are left out
 * (NoDevice), the instance runs in the volume's zone (EBS attaches nowhere else), and the volume is
 * attached at the plan's data device once the instance runs; the boot unit waits for it. The volume
 * is never recorded, and AttachVolume does not set DeleteOnTermination: neither undo nor the
 * instance's termination deletes it.
 */
import type { Image } from '@aws-sdk/client-ec2';
import { KilnError } from '../../core/errors.js';
import { checkedName } from '../../definition/names.js';
import type { BuildContext } from '../../pipeline/context.js';
import type { BuilderAddressLookup } from '../builder-address.js';
import type { Artifact, InstanceOptions, SshAccess } from '../target.js';
import { describeSubnet } from './access.js';
import { attachVolume, customerVolume, type CustomerVolume } from './attach.js';
import { buildTags, scopeOf, targetPlan } from './build-context.js';
import type { CallScope, Ec2Api } from './clients.js';
import { loggedHostKeys } from './hostkeys.js';
import { describeImage } from './image.js';
import { DEFAULT_DATA_DEVICE, noDevice } from './instance.js';
import { launchToken, launchRecorded, publicAddress, type LaunchedVolume } from './launch.js';
import { createTemporaryAccess } from './temporary-access.js';

export interface ValidationEnvironment {
  timeouts: { runningMs: number; attachMs: number; hostKeysMs: number };
  builderAddress?: BuilderAddressLookup;
  /** Test only: where SSH really is. */
  sshEndpoint?: { host?: string; port?: number };
}

export async function launchValidationInstance(api: Ec2Api, ctx: BuildContext, images: Artifact[], options: InstanceOptions, env: ValidationEnvironment): Promise<SshAccess> {
  const t = targetPlan(ctx);
  const amiId = amiInRegion(images, t.region);
  const image = await launchableImage(api, scopeOf(ctx, amiId), amiId);
  const given = options.dataDisk ? await customerVolume(api, scopeOf(ctx, options.dataDisk), options.dataDisk) : undefined;
  const zone = given ? await launchZone(api, ctx, given) : undefined;
  const names = validationNames(ctx);
  const access = await createTemporaryAccess(api, ctx, {
    keyPairName: names.keyPair,
    securityGroupName: names.securityGroup,
    publicKey: options.publicKey,
    builderAddress: env.builderAddress,
  });

  const rootDevice = image.RootDeviceName as string;
  const imageData = (image.BlockDeviceMappings ?? []).filter((m) => m.Ebs && m.DeviceName && m.DeviceName !== rootDevice).map((m) => m.DeviceName as string);
  const made: LaunchedVolume[] = [{ device: rootDevice, purpose: 'root' }, ...(given ? [] : imageData.map((device, i) => ({ device, purpose: i === 0 ? 'data' : `data${i + 1}` })))];
  const running = await launchRecorded(
    api,
    ctx,
    {
      name: names.instance,
      imageId: amiId,
      instanceType: t.instanceType,
      keyName: names.keyPair,
      securityGroupId: access.securityGroupId,
      subnetId: t.subnetId,
      availabilityZone: t.subnetId ? undefined : zone,
      blockDevices: given ? imageData.map(noDevice) : [],
      tags: buildTags(ctx),
    },
    made,
    { token: launchToken(ctx), runningMs: env.timeouts.runningMs },
  );
  const host = publicAddress(running, t.region);
  await ctx.state.setFacts({ sshHost: host });

  const dataDevice = ctx.plan.disks.data.deviceName ?? DEFAULT_DATA_DEVICE;
  if (given) {
    await attachVolume(api, scopeOf(ctx, given.id), { volumeId: given.id, instanceId: running.id, device: dataDevice }, env.timeouts.attachMs);
    ctx.log.line(`aws: instance ${running.id} running at ${host} in ${running.zone}; the given data volume ${given.id} attached at ${dataDevice} (kept)`);
  } else {
    const data = imageData.map((device) => `${running.volumes[device]} at ${device}`).join(', ') || 'none in the image';
    ctx.log.line(`aws: instance ${running.id} running at ${host} from ${amiId}; data volume ${data}`);
  }
  const hostKeys = await loggedHostKeys(api, scopeOf(ctx, running.id), running.id, env.timeouts.hostKeysMs, ctx.log.line);
  return { host: env.sshEndpoint?.host ?? host, port: env.sshEndpoint?.port ?? 22, username: ctx.plan.access.sshUser, privateKey: options.privateKey, hostKeys };
}

/** The AMI in `region` (a build's artifacts), else one without a region (an AMI id given by hand). */
export function amiInRegion(images: Artifact[], region: string): string {
  const amis = images.filter((a) => a.id.startsWith('ami-'));
  const found = amis.find((a) => a.region === region) ?? amis.find((a) => a.region === undefined);
  if (!found) {
    const listed = images.map((a) => `${a.id}${a.region ? ` (${a.region})` : ''}`).join(', ') || 'none';
    throw new KilnError('VALIDATION', `no AMI in ${region}, the plan's region, among the images to validate: ${listed}`, { region });
  }
  return found.id;
}

async function launchableImage(api: Ec2Api, scope: CallScope, id: string): Promise<Image> {
  const image = await describeImage(api, scope, id);
  if (!image) {
    throw new KilnError('INPUT', `AMI ${id} does not exist in ${scope.region}, or this account may not launch it`, { resource: id, region: scope.region, code: 'InvalidAMIID.NotFound' });
  }
  if (image.State !== 'available' || !image.RootDeviceName) {
    throw new KilnError('CLOUD', `AMI ${id} is ${image.State ?? 'in an unknown state'}, not available`, { resource: id, region: scope.region, code: 'InvalidAMIID.Unavailable' });
  }
  return image;
}

/** The given volume's zone; the plan's subnet, if any, must be in it. */
async function launchZone(api: Ec2Api, ctx: BuildContext, volume: CustomerVolume): Promise<string> {
  const t = targetPlan(ctx);
  if (!t.subnetId) return volume.zone;
  const subnet = await describeSubnet(api, scopeOf(ctx, t.subnetId), t.subnetId);
  if (subnet.zone !== volume.zone) {
    throw new KilnError(
      'INPUT',
      `--data-disk: volume ${volume.id} is in ${volume.zone}, but targets.aws.subnetId ${t.subnetId} is in ${subnet.zone}: an EBS volume attaches only to instances in its own availability zone`,
      { field: '--data-disk', resource: volume.id, region: t.region },
    );
  }
  return volume.zone;
}

/** `kiln-<validation build id>-<purpose>`: distinct from the build's own names. */
function validationNames(ctx: BuildContext): { keyPair: string; securityGroup: string; instance: string } {
  const base = `kiln-${ctx.plan.buildId}`;
  return {
    keyPair: checkedName('ec2', `${base}-key`, 'key pair name'),
    securityGroup: checkedName('ec2', `${base}-ssh`, 'security group name'),
    instance: `${base}-instance`,
  };
}
