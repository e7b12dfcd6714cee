/**
 * Instances: RunInstances with block device mappings over the image's (the build's root and data
 * volumes, deleted on termination; NoDevice for a validation instance's data volume), tagged at
 * creation, with a ClientToken, so a retried or repeated launch returns the same instance and
 * cleanup can find an instance whose id was never recorded; then the SDK waiters for running,
 * stopped and terminated.
 */
import {
  DescribeInstancesCommand,
  RunInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  waitForInstanceRunning,
  waitForInstanceStopped,
  waitForInstanceTerminated,
  type BlockDeviceMapping,
  type DescribeInstancesCommandOutput,
  type Instance,
  type VolumeType,
  type _InstanceType,
} from '@aws-sdk/client-ec2';
import { KilnError } from '../../core/errors.js';
import { done, notYet, waitFor } from '../../core/wait.js';
import type { DiskPlan } from '../../definition/plan.js';
import type { CallScope, Ec2Api } from './clients.js';
import { isNotFound } from './errors.js';
import { tagSpecs } from './tagging.js';

/** Where the data volume goes when the plan names no device. */
export const DEFAULT_DATA_DEVICE = '/dev/sdf';

export interface LaunchSpec {
  name: string;
  clientToken: string;
  imageId: string;
  instanceType: string;
  keyName: string;
  securityGroupId: string;
  subnetId?: string;
  /** Without a subnet: launch in this zone's default subnet (a volume to attach lives there). */
  availabilityZone?: string;
  /** Over the image's own mappings (ebsVolume, noDevice); none = the image's volumes as they are. */
  blockDevices: BlockDeviceMapping[];
  tags: Record<string, string>;
}

export async function runInstance(api: Ec2Api, scope: CallScope, spec: LaunchSpec): Promise<string> {
  const out = await api.call('RunInstances', scope, (c, o) =>
    c.send(
      new RunInstancesCommand({
        ImageId: spec.imageId,
        InstanceType: spec.instanceType as _InstanceType,
        MinCount: 1,
        MaxCount: 1,
        KeyName: spec.keyName,
        SecurityGroupIds: [spec.securityGroupId],
        SubnetId: spec.subnetId,
        Placement: spec.availabilityZone ? { AvailabilityZone: spec.availabilityZone } : undefined,
        BlockDeviceMappings: spec.blockDevices.length > 0 ? spec.blockDevices : undefined,
        MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
        TagSpecifications: tagSpecs(['instance', 'volume'], spec.tags, spec.name),
        ClientToken: spec.clientToken,
      }),
      o,
    ),
  );
  const id = out.Instances?.[0]?.InstanceId;
  if (!id) throw new KilnError('CLOUD', `EC2 RunInstances returned no instance for ${spec.name}`, { resource: spec.name, region: scope.region, code: 'NoId' });
  return id;
}

/** A volume of the plan's size and type at `device`, deleted with the instance. */
export function ebsVolume(device: string, disk: DiskPlan, encryption: { encrypted: boolean; kmsKeyId?: string }): BlockDeviceMapping {
  const encrypted = encryption.encrypted;
  return {
    DeviceName: device,
    Ebs: {
      VolumeSize: disk.sizeGb,
      VolumeType: disk.type as VolumeType | undefined,
      Iops: disk.iops,
      Throughput: disk.type === 'gp3' ? disk.throughput : undefined,
      Encrypted: encrypted,
      KmsKeyId: encrypted ? encryption.kmsKeyId : undefined,
      DeleteOnTermination: true,
    },
  };
}

/** Leaves out the image's volume at `device`. */
export function noDevice(device: string): BlockDeviceMapping {
  return { DeviceName: device, NoDevice: '' };
}

/** Waits for `running` (the waiter retries InvalidInstanceID.NotFound); returns the instance. */
export async function waitRunning(api: Ec2Api, scope: CallScope, id: string, timeoutMs: number): Promise<Instance> {
  const out = (await api.waitUntil(waitForInstanceRunning, { InstanceIds: [id] }, {
    ...scope,
    resource: id,
    what: `instance ${id} to be running`,
    timeoutMs,
    describeFailure,
  })) as DescribeInstancesCommandOutput;
  const instance = firstInstance(out);
  if (!instance) throw new KilnError('CLOUD', `EC2 DescribeInstances did not return ${id}`, { resource: id, region: scope.region, code: 'InvalidInstanceID.NotFound' });
  return instance;
}

/** The running instance once it lists volumes at every one of `devices`. */
export async function describeWithVolumes(api: Ec2Api, scope: CallScope, first: Instance, devices: string[]): Promise<Instance> {
  const id = first.InstanceId ?? scope.resource;
  const complete = (i: Instance) => devices.every((d) => volumeAt(i, d));
  if (complete(first)) return first;
  return waitFor(
    async () => {
      const out = await api.callVisible('DescribeInstances', { ...scope, resource: id }, (c, o) => c.send(new DescribeInstancesCommand({ InstanceIds: [id] }), o));
      const instance = firstInstance(out);
      return instance && complete(instance) ? done(instance) : notYet(instance?.BlockDeviceMappings?.map((m) => m.DeviceName));
    },
    { what: `instance ${id} to list its volumes at ${devices.join(', ')}`, timeoutMs: api.timing.consistencyMs, initialDelayMs: api.timing.pollMs, signal: scope.signal },
  );
}

export function volumeAt(instance: Instance, device: string): string | undefined {
  return instance.BlockDeviceMappings?.find((m) => m.DeviceName === device)?.Ebs?.VolumeId;
}

/** The instance RunInstances made with this client token, if it exists and is not terminated. */
export async function findByClientToken(api: Ec2Api, scope: CallScope, token: string): Promise<Instance | undefined> {
  const out = await api.call('DescribeInstances', scope, (c, o) =>
    c.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: 'client-token', Values: [token] },
          { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped', 'shutting-down'] },
        ],
      }),
      o,
    ),
  );
  return firstInstance(out);
}

/** Stops the instance; forces the stop if a clean shutdown takes longer than `timeoutMs`. */
export async function stopInstance(api: Ec2Api, scope: CallScope, id: string, timeoutMs: number, log: (line: string) => void): Promise<void> {
  const wait = (what: string) => api.waitUntil(waitForInstanceStopped, { InstanceIds: [id] }, { ...scope, resource: id, what, timeoutMs, describeFailure });
  await api.callVisible('StopInstances', { ...scope, resource: id }, (c, o) => c.send(new StopInstancesCommand({ InstanceIds: [id] }), o));
  try {
    await wait(`instance ${id} to stop`);
  } catch (err) {
    if (!(err instanceof KilnError) || err.code !== 'TIMEOUT') throw err;
    log(`aws: instance ${id} did not shut down cleanly in time; forcing the stop`);
    await api.call('StopInstances', { ...scope, resource: id }, (c, o) => c.send(new StopInstancesCommand({ InstanceIds: [id], Force: true }), o));
    await wait(`instance ${id} to stop (forced)`);
  }
}

/**
 * Terminates the instance and waits until it is terminated (its DeleteOnTermination volumes are
 * then gone and its security group free). NotFound within the consistency window after `since` is
 * an instance not yet visible; later it is an instance long gone.
 */
export async function terminateInstance(api: Ec2Api, scope: CallScope, id: string, timeoutMs: number, since: number): Promise<void> {
  try {
    await api.callVisible('TerminateInstances', { ...scope, resource: id }, (c, o) => c.send(new TerminateInstancesCommand({ InstanceIds: [id] }), o), since);
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  await api.waitUntil(waitForInstanceTerminated, { InstanceIds: [id] }, { ...scope, resource: id, what: `instance ${id} to terminate`, timeoutMs, describeFailure });
}

function firstInstance(out: DescribeInstancesCommandOutput | undefined): Instance | undefined {
  return out?.Reservations?.flatMap((r) => r.Instances ?? [])[0];
}

/** What a waiter's last DescribeInstances said: `stopped (Server.InternalError: ...)`. */
function describeFailure(reason: unknown): string {
  if (reason instanceof Error) return `${reason.name}: ${reason.message}`;
  const instance = firstInstance(reason as DescribeInstancesCommandOutput);
  if (!instance) return 'the instance is not there';
  const why = instance.StateReason?.Message ?? instance.StateTransitionReason;
  return `the instance is ${instance.State?.Name ?? 'in an unknown state'}${why ? ` (${why})` : ''}`;
}
