/**
 * Compute Engine operations: every insert, stop, delete and deprecate returns one (zonal or global).
 * `startOperation` makes the call with a fresh `requestId` (the same on every retry, so a retried
 * insert that did reach the API is not made twice); `waitOperation` calls zoneOperations.wait /
 * globalOperations.wait (which block server-side for up to two minutes) until the operation is DONE,
 * under a deadline, and turns `error.errors[]` into a CLOUD KilnError.
 */
import { randomUUID } from 'node:crypto';
import { KilnError } from '../../core/errors.js';
import { done, notYet, waitFor } from '../../core/wait.js';
import type { GceApi, Operation, Scope } from './client.js';

export interface OperationTarget {
  project: string;
  /** What the operation does, for messages: "creating instance", "deleting disk". */
  what: string;
  /** The resource's path, for messages and error context. */
  resource: string;
}

/** Starts a mutating call; `start` gets the requestId and returns the SDK's `[{latestResponse}]`. */
export async function startOperation(
  api: GceApi,
  scope: Scope,
  target: OperationTarget,
  start: (requestId: string) => Promise<readonly [{ latestResponse: unknown }, ...unknown[]]>,
): Promise<Operation> {
  const requestId = randomUUID();
  const [lro] = await api.call(scope, target.what, target.resource, () => start(requestId));
  const op = lro.latestResponse as Operation | undefined;
  if (!op?.name) throw new KilnError('CLOUD', `GCE: ${target.what} ${target.resource} returned no operation`, { resource: target.resource, reason: 'noOperation' });
  return op;
}

const lastSegment = (url: string | null | undefined): string => (url ?? '').split('/').pop() ?? '';

/** Waits until the operation is DONE; throws its first error (reason = the error's code) if it failed. */
export async function waitOperation(api: GceApi, scope: Scope, target: OperationTarget, op: Operation, timeoutMs: number): Promise<Operation> {
  let current = op;
  const name = String(op.name);
  const zone = lastSegment(op.zone);
  const finished = await waitFor(
    async () => {
      if (current.status !== 'DONE') {
        const request = { project: target.project, operation: name };
        [current] = zone
          ? await api.call(scope, 'waiting for operation of', target.resource, () => api.clients.zoneOperations.wait({ ...request, zone }))
          : await api.call(scope, 'waiting for operation of', target.resource, () => api.clients.globalOperations.wait(request));
      }
      return current.status === 'DONE' ? done(current) : notYet(`operation ${name} ${current.status ?? '?'}`);
    },
    { what: `${target.what} ${target.resource}`, timeoutMs, signal: scope.signal, initialDelayMs: api.pollMs, maxDelayMs: 10_000 },
  );
  const errors = finished.error?.errors ?? [];
  if (errors.length > 0) {
    const first = errors[0];
    const reason = first?.code ?? 'OPERATION_FAILED';
    const messages = errors.map((e) => `${e.code ?? '?'}: ${e.message ?? ''}`).join('; ');
    throw new KilnError('CLOUD', `GCE: ${target.what} ${target.resource} failed: ${messages}`, {
      resource: target.resource,
      reason,
      status: finished.httpErrorStatusCode ?? undefined,
      operation: name,
    });
  }
  return finished;
}

/** startOperation + waitOperation. */
export async function runOperation(
  api: GceApi,
  scope: Scope,
  target: OperationTarget,
  timeoutMs: number,
  start: (requestId: string) => Promise<readonly [{ latestResponse: unknown }, ...unknown[]]>,
): Promise<Operation> {
  return waitOperation(api, scope, target, await startOperation(api, scope, target, start), timeoutMs);
}
