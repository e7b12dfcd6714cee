/**
 * Deleting one resource given only its ledger entry (or a tagged resource found by a sweep), from
 * any process: the region is in the entry; an intent without an id is found by what the intent
 * recorded (the instance's client token, the name of a group or image). "Not found" is success,
 * except right after the create call, when it may be EC2's eventual consistency: then it is looked
 * for again until the consistency window has passed.
 */
import { DeleteKeyPairCommand, DeleteSecurityGroupCommand, DeleteVolumeCommand, DescribeVolumesCommand } from '@aws-sdk/client-ec2';
import { rm } from 'node:fs/promises';
import { KilnError } from '../../core/errors.js';
import { done, notYet, waitFor } from '../../core/wait.js';
import type { LedgerEntry } from '../../pipeline/ledger.js';
import type { DestroyOptions } from '../target.js';
import { findSecurityGroup } from './access.js';
import type { CallScope, Ec2Api } from './clients.js';
import { codeOf, isNotFound } from './errors.js';
import { deleteImage, deleteSnapshot } from './image.js';
import { findByClientToken, terminateInstance, volumeAt } from './instance.js';

export interface DestroyTimeouts {
  /** An instance to terminate. */
  terminateMs: number;
  /** A security group to be free of instances (DependencyViolation), a volume to be detached. */
  dependencyMs: number;
  /** A pending image to settle before it can be deregistered. */
  imageMs: number;
}

export async function destroyEntry(api: Ec2Api, entry: LedgerEntry, options: DestroyOptions, timeouts: DestroyTimeouts): Promise<void> {
  if (entry.kind === 'file') {
    await rm(entry.id ?? entry.name, { force: true });
    return;
  }
  const region = entry.region ?? (await api.defaultRegion());
  const scope: CallScope = { region, resource: entry.id ?? entry.name, signal: options.signal };
  // When the create call was made: a miss before the window passed may be eventual consistency.
  const since = Date.parse(entry.createdAt) || 0;
  switch (entry.kind) {
    case 'instance':
      return destroyInstance(api, scope, entry, since, timeouts, options.log);
    case 'volume':
      return destroyVolume(api, scope, entry, timeouts);
    case 'security-group':
      return destroySecurityGroup(api, scope, entry, timeouts, options.log);
    case 'key-pair':
      // Deleting a key pair by a name that does not exist succeeds, as EC2 does.
      await api.call('DeleteKeyPair', scope, (c, o) => c.send(new DeleteKeyPairCommand(entry.id?.startsWith('key-') ? { KeyPairId: entry.id } : { KeyName: entry.name }), o)).catch(ignoreNotFound);
      return;
    case 'image':
    case 'image-copy':
      return deleteImage(api, scope, { id: entry.id, name: entry.name }, since, timeouts.imageMs);
    case 'snapshot':
      if (!entry.id) return; // snapshots are recorded with their ids only (their image's deletion takes them)
      return deleteSnapshot(api, scope, entry.id, entry.build, timeouts.imageMs);
    default:
      throw new KilnError('INTERNAL', `the aws target cannot delete a ${entry.kind}`, { resource: entry.id ?? entry.name });
  }
}

async function destroyInstance(api: Ec2Api, scope: CallScope, entry: LedgerEntry, since: number, timeouts: DestroyTimeouts, log: (line: string) => void): Promise<void> {
  let id = entry.id;
  if (!id) {
    const token = entry.extra?.clientToken;
    if (!token) throw new KilnError('INTERNAL', `instance intent ${entry.name} has no client token to find it by`, { resource: entry.name });
    id = await lookForInstance(api, scope, token, since);
    if (!id) return;
    log(`aws: found instance ${id} of ${entry.name} by its client token`);
  }
  await terminateInstance(api, { ...scope, resource: id }, id, timeouts.terminateMs, since);
}

/** The instance of a client token, looked for again while it may not be visible yet. */
async function lookForInstance(api: Ec2Api, scope: CallScope, token: string, since: number): Promise<string | undefined> {
  const until = since + api.timing.consistencyMs;
  return waitFor(
    async () => {
      const found = await findByClientToken(api, scope, token);
      if (found?.InstanceId || Date.now() >= until) return done(found?.InstanceId);
      return notYet('no instance with that client token (yet)');
    },
    { what: `the instance of client token ${token}`, timeoutMs: api.timing.consistencyMs + 1, initialDelayMs: api.timing.pollMs, maxDelayMs: 10_000, signal: scope.signal },
  );
}

/**
 * A volume: normally gone already with its instance (DeleteOnTermination). One still attached is
 * waited for (its instance is being terminated), then deleted. An intent is resolved through its
 * instance's client token and device; no instance, no volume.
 */
async function destroyVolume(api: Ec2Api, scope: CallScope, entry: LedgerEntry, timeouts: DestroyTimeouts): Promise<void> {
  let id = entry.id;
  if (!id) {
    const token = entry.extra?.clientToken;
    const device = entry.extra?.device;
    if (!token || !device) return;
    const instance = await findByClientToken(api, scope, token);
    id = instance ? volumeAt(instance, device) : undefined;
    if (!id) return;
  }
  const volumeId = id;
  const at = { ...scope, resource: volumeId };
  const state = await waitFor(
    async () => {
      try {
        const out = await api.call('DescribeVolumes', at, (c, o) => c.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }), o));
        const volume = out.Volumes?.[0];
        if (!volume) return done('gone');
        return volume.State === 'in-use' || volume.State === 'creating' ? notYet(volume.State) : done(volume.State ?? 'unknown');
      } catch (err) {
        if (isNotFound(err)) return done('gone');
        throw err;
      }
    },
    { what: `volume ${volumeId} to be detached`, timeoutMs: timeouts.dependencyMs, initialDelayMs: api.timing.pollMs, maxDelayMs: 15_000, signal: scope.signal },
  );
  if (state === 'gone' || state === 'deleted' || state === 'deleting') return;
  await api.call('DeleteVolume', at, (c, o) => c.send(new DeleteVolumeCommand({ VolumeId: volumeId }), o)).catch(ignoreNotFound);
}

/** A security group is in use until its instance is terminated: DependencyViolation is waited out. */
async function destroySecurityGroup(api: Ec2Api, scope: CallScope, entry: LedgerEntry, timeouts: DestroyTimeouts, log: (line: string) => void): Promise<void> {
  let id = entry.id;
  if (!id) {
    id = (await findSecurityGroup(api, scope, entry.name, entry.extra?.vpcId))?.GroupId;
    if (!id) return;
  }
  const groupId = id;
  let told = false;
  await waitFor(
    async () => {
      try {
        await api.call('DeleteSecurityGroup', { ...scope, resource: groupId }, (c, o) => c.send(new DeleteSecurityGroupCommand({ GroupId: groupId }), o));
        return done(true);
      } catch (err) {
        if (isNotFound(err)) return done(true);
        if (codeOf(err) !== 'DependencyViolation') throw err;
        if (!told) log(`aws: security group ${groupId} still in use; waiting for its instance to go`);
        told = true;
        return notYet(err);
      }
    },
    { what: `security group ${groupId} to be free to delete`, timeoutMs: timeouts.dependencyMs, initialDelayMs: api.timing.pollMs, maxDelayMs: 15_000, signal: scope.signal },
  );
}

function ignoreNotFound(err: unknown): void {
  if (!isNotFound(err)) throw err;
}
