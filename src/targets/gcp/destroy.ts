/**
 * Deleting one ledger entry (or one resource a sweep found by its labels), from this process or
 * from `kiln cleanup` in another: the entry's name, zone and project (`group`) are all it takes.
 * Every delete first waits for operations still running on the name (see inflight.ts), so an
 * insert kiln did not live to see finish is not overtaken by the delete. Gone already is success.
 */
import { rm } from 'node:fs/promises';
import { KilnError } from '../../core/errors.js';
import type { LedgerEntry } from '../../pipeline/ledger.js';
import type { DestroyOptions } from '../target.js';
import type { GceApi, Scope } from './client.js';
import { deleteFirewall, firewallPath } from './firewall.js';
import { deleteImage, imagePath } from './images.js';
import { deleteWhenSettled } from './inflight.js';
import { deleteDisk, deleteInstance, diskPath, instancePath } from './instance.js';

export interface DestroyTimeouts {
  /** Each delete, and each wait for an operation still running on the resource. */
  operationMs: number;
  /** Waiting for an image insert still running (images take long). */
  imageMs: number;
}

export async function destroyEntry(api: GceApi, entry: LedgerEntry, project: string, options: DestroyOptions, timeouts: DestroyTimeouts): Promise<void> {
  if (entry.kind === 'file') {
    await rm(entry.id ?? entry.name, { force: true });
    return;
  }
  const scope: Scope = { log: options.log, signal: options.signal };
  const { operationMs } = timeouts;
  switch (entry.kind) {
    case 'instance': {
      const zone = zoneOf(entry);
      const home = { project, zone };
      await deleteWhenSettled(api, scope, home, instancePath(project, zone, entry.name), operationMs, () =>
        deleteInstance(api, scope, project, zone, entry.name, operationMs),
      );
      // Its disks have ledger entries of their own; deleting them here too covers an instance
      // destroyed on its own (both are no-ops when already gone).
      for (const disk of [entry.extra?.dataDisk, entry.extra?.bootDisk]) {
        if (disk) await deleteDisk(api, scope, project, zone, disk, operationMs);
      }
      return;
    }
    case 'disk': {
      const zone = zoneOf(entry);
      return deleteWhenSettled(api, scope, { project, zone }, diskPath(project, zone, entry.name), operationMs, () =>
        deleteDisk(api, scope, project, zone, entry.name, operationMs),
      );
    }
    case 'firewall':
      return deleteWhenSettled(api, scope, { project }, firewallPath(project, entry.name), operationMs, () =>
        deleteFirewall(api, scope, project, entry.name, operationMs),
      );
    case 'image':
      return deleteWhenSettled(api, scope, { project }, imagePath(project, entry.name), timeouts.imageMs, () =>
        deleteImage(api, scope, project, entry.name, operationMs),
      );
    default:
      throw new KilnError('INTERNAL', `the gcp target cannot delete a ${entry.kind}`, { resource: entry.name });
  }
}

function zoneOf(entry: LedgerEntry): string {
  if (!entry.zone) throw new KilnError('INTERNAL', `ledger entry ${entry.seq} (${entry.kind} ${entry.name}) has no zone`, { resource: entry.name });
  return entry.zone;
}
