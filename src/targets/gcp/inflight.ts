/**
 * Operations on one resource, found by its path in the zone's or the project's operations list
 * (filtered by targetLink). A delete by name can overtake the insert of a kiln that died inside the
 * call: the delete answers notFound, the resource is taken as gone, then the insert completes and
 * the resource leaks. So a delete first waits for what is still running on the name, and after a
 * notFound looks again: an operation it had not seen before means an insert arrived meanwhile
 * (running or already done), and the delete is repeated once that operation is over.
 */
import { KilnError } from '../../core/errors.js';
import type { GceApi, Operation, Scope } from './client.js';
import { waitOperation } from './operations.js';

/** Where a resource's operations are listed: its zone, or the project's global operations. */
export interface OperationHome {
  project: string;
  zone?: string;
}

/** Every operation the API still lists whose target is exactly `path` (projects/<p>/.../<name>). */
export async function operationsOn(api: GceApi, scope: Scope, home: OperationHome, path: string): Promise<Operation[]> {
  // `:` matches a substring (AIP-160); the exact match is checked here, so kiln-x never waits on kiln-x2.
  const request = { project: home.project, filter: `targetLink : "${path}"` };
  const zone = home.zone;
  const [ops] = zone
    ? await api.call(scope, 'listing operations on', path, () => api.clients.zoneOperations.list({ ...request, zone }))
    : await api.call(scope, 'listing operations on', path, () => api.clients.globalOperations.list(request));
  return ops.filter((op) => op.targetLink === path || (op.targetLink ?? '').endsWith(`/${path}`));
}

/**
 * Waits until each of `ops` not yet DONE is (each under `timeoutMs`). How they end does not matter
 * here: a failed insert made nothing, a finished one made what the caller deletes next.
 */
async function settle(api: GceApi, scope: Scope, home: OperationHome, path: string, ops: Operation[], timeoutMs: number): Promise<void> {
  for (const op of ops.filter((o) => o.status !== 'DONE')) {
    scope.log(`gcp: ${op.operationType ?? 'an operation'} of ${path} is still running (${op.name}); waiting for it before deleting`);
    try {
      await waitOperation(api, scope, { project: home.project, what: `${op.operationType ?? 'operation'} still running on`, resource: path }, op, timeoutMs);
    } catch (err) {
      if (!isOperationFailure(err)) throw err;
    }
  }
}

/** How many times a delete may find nothing while new operations turn up on the name, before giving up. */
const MAX_LATE_ARRIVALS = 3;

/**
 * Deletes `path` once nothing runs on it: `remove` returns false when the resource was not there,
 * and then an operation that turned up on the name meanwhile is waited for and the delete repeated.
 */
export async function deleteWhenSettled(
  api: GceApi,
  scope: Scope,
  home: OperationHome,
  path: string,
  timeoutMs: number,
  remove: () => Promise<boolean>,
): Promise<void> {
  let known = await operationsOn(api, scope, home, path);
  await settle(api, scope, home, path, known, timeoutMs);
  for (let late = 0; ; late++) {
    if (await remove()) return;
    const now = await operationsOn(api, scope, home, path);
    const seen = new Set(known.map((op) => op.name));
    const arrived = now.filter((op) => !seen.has(op.name) && op.operationType !== 'delete');
    if (arrived.length === 0) return;
    if (late >= MAX_LATE_ARRIVALS) {
      throw new KilnError('CLOUD', `GCE: ${path} kept being recreated while kiln deleted it (${arrived.map((op) => op.name).join(', ')})`, { resource: path, reason: 'recreated' });
    }
    scope.log(`gcp: ${arrived.map((op) => op.operationType).join(', ')} of ${path} arrived after a delete found nothing; deleting it again`);
    await settle(api, scope, home, path, arrived, timeoutMs);
    known = now;
  }
}

/** A KilnError made from an operation that ended with errors (waitOperation's, with its name). */
function isOperationFailure(err: unknown): boolean {
  return err instanceof KilnError && err.code === 'CLOUD' && typeof err.context.operation === 'string';
}
