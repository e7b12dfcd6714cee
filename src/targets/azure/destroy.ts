/**
 * Deleting one ledger entry, from this process or from a fresh driver in `kiln cleanup`: everything
 * needed is in the entry (the id, else the name, group and subscription recorded with the intent).
 * A resource or group that is gone already is success. Deletes refused because a dependant is still
 * letting go (a NIC reserved after its VM, a subnet still in use) are tried again for a while.
 */
import { rm } from 'node:fs/promises';
import { KilnError } from '../../core/errors.js';
import { done, notYet, waitFor } from '../../core/wait.js';
import type { LedgerEntry } from '../../pipeline/ledger.js';
import type { DestroyOptions } from '../target.js';
import type { AzureClientPool, AzureClients, CallOptions } from './clients.js';
import { armFailure, cloudError, isNotFound } from './errors.js';
import { KIND, normalKind, parseId, roleAssignmentId, type AzureKind } from './ids.js';
import { deleteRoleAssignment } from './sharing.js';

/** ARM codes that mean "not now, something still holds it". */
const IN_USE = new Set([
  'InUseSubnetCannotBeDeleted',
  'InUseNetworkSecurityGroupCannotBeDeleted',
  'PublicIPAddressInUse',
  'NicInUse',
  'NicReservedForAnotherVm',
  'AnotherOperationInProgress',
  'RetryableError',
  'OperationNotAllowed',
]);

export const DEFAULT_IN_USE_TIMEOUT_MS = 10 * 60_000;

export interface DestroyConfig {
  inUseTimeoutMs?: number;
}

interface Target {
  c: AzureClients;
  kind: AzureKind;
  group: string;
  name: string;
  /** Names inside the provider path (gallery, definition, version). */
  names: string[];
  label: string;
}

export async function destroyEntry(pool: AzureClientPool, entry: LedgerEntry, options: DestroyOptions, config: DestroyConfig = {}): Promise<void> {
  if (entry.kind === 'file') {
    await rm(entry.id ?? entry.name, { force: true });
    return;
  }
  const target = await locate(pool, entry);
  const call = target.c.call(options.signal);
  options.log(`azure: deleting ${target.kind} ${target.label}`);
  await waitFor(
    async () => {
      try {
        await remove(target, entry, call);
        return done(undefined);
      } catch (err) {
        if (isNotFound(err)) return done(undefined);
        const code = armFailure(err).code;
        if (code && IN_USE.has(code)) return notYet(`${code}: ${armFailure(err).message}`);
        throw cloudError(err, `deleting ${target.kind}`, target.label);
      }
    },
    {
      what: `${target.kind} ${target.label} to be deletable`,
      timeoutMs: config.inUseTimeoutMs ?? DEFAULT_IN_USE_TIMEOUT_MS,
      initialDelayMs: Math.max(call.updateIntervalInMs, 10),
      maxDelayMs: 30_000,
      signal: options.signal,
      onPoll: (_, seen) => options.log(`azure: ${target.label} not deletable yet (${String(seen)}), retrying`),
    },
  );
}

async function locate(pool: AzureClientPool, entry: LedgerEntry): Promise<Target> {
  const kind = normalKind(entry.kind);
  if (!kind) throw new KilnError('INTERNAL', `the azure target cannot delete a ${entry.kind}`, { resource: entry.id ?? entry.name });
  const parsed = entry.id ? parseId(entry.id) : undefined;
  const c = await pool.clients(entry.extra?.subscription ?? parsed?.subscription);
  const group = parsed?.group ?? entry.group ?? (kind === KIND.group ? entry.name : undefined);
  const label = entry.id ?? `${entry.name}${group ? ` in ${group}` : ''}`;
  if (!group && kind !== KIND.roleAssignment) throw new KilnError('INTERNAL', `ledger entry ${entry.seq} (${entry.kind} ${entry.name}) has no resource group`, { resource: label });
  let names = parsed && parsed.names.length > 0 ? parsed.names : [entry.name];
  if (kind === KIND.galleryVersion && names.length < 3) {
    const x = entry.extra ?? {};
    names = x.gallery && x.definition && x.version ? [x.gallery, x.definition, x.version] : entry.name.split('/');
  }
  const name = kind === KIND.group ? (group as string) : (names[names.length - 1] ?? entry.name);
  return { c, kind, group: group ?? '', name, names, label };
}

async function remove(t: Target, entry: LedgerEntry, call: CallOptions): Promise<void> {
  const { c, group, name } = t;
  switch (t.kind) {
    case KIND.group:
      return c.resources.resourceGroups.beginDeleteAndWait(name, call);
    case KIND.vm:
      return c.compute.virtualMachines.beginDeleteAndWait(group, name, call);
    case KIND.disk:
      return c.compute.disks.beginDeleteAndWait(group, name, call);
    case KIND.image:
      return c.compute.images.beginDeleteAndWait(group, name, call);
    case KIND.galleryVersion: {
      const [gallery, definition, version] = t.names;
      if (!gallery || !definition || !version) throw new KilnError('INTERNAL', `cannot tell gallery, definition and version from ${t.label}`, { resource: t.label });
      return c.compute.galleryImageVersions.beginDeleteAndWait(group, gallery, definition, version, call);
    }
    case KIND.nic:
      return c.network.networkInterfaces.beginDeleteAndWait(group, name, call);
    case KIND.publicIp:
      return c.network.publicIPAddresses.beginDeleteAndWait(group, name, call);
    case KIND.nsg:
      return c.network.networkSecurityGroups.beginDeleteAndWait(group, name, call);
    case KIND.vnet:
      return c.network.virtualNetworks.beginDeleteAndWait(group, name, call);
    case KIND.roleAssignment: {
      const scope = entry.extra?.scope;
      const id = entry.id ?? (scope ? roleAssignmentId(scope, entry.name) : undefined);
      if (!id) throw new KilnError('INTERNAL', `role assignment ${entry.name} has neither id nor scope`, { resource: t.label });
      return deleteRoleAssignment(c, id, call);
    }
  }
}
