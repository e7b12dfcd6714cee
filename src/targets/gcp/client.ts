/**
 * The Compute Engine clients (`@google-cloud/compute`, REST transport) and the one way the GCE
 * driver calls them: `GceApi.call`, which retries throttling (429, rateLimitExceeded) and server
 * errors (5xx, backendError, connection resets) with bounded exponential backoff, since the SDK
 * retries nothing in REST mode, and turns every other failure into a CLOUD KilnError that names the
 * API's reason and the resource.
 *
 * Credentials: Application Default Credentials unless the client options carry an auth client.
 */
import {
  DisksClient,
  FirewallsClient,
  GlobalOperationsClient,
  ImagesClient,
  InstancesClient,
  ZoneOperationsClient,
  type protos,
} from '@google-cloud/compute';
import pRetry from 'p-retry';
import { KilnError } from '../../core/errors.js';
import { apiFailure, cloudError, isTransient } from './errors.js';

export type Operation = protos.google.cloud.compute.v1.IOperation;
/** The options every `@google-cloud/compute` v1 client constructor accepts. */
export type ComputeClientOptions = NonNullable<ConstructorParameters<typeof InstancesClient>[0]>;

export interface GceClients {
  instances: InstancesClient;
  images: ImagesClient;
  disks: DisksClient;
  firewalls: FirewallsClient;
  zoneOperations: ZoneOperationsClient;
  globalOperations: GlobalOperationsClient;
}

export function createClients(options: ComputeClientOptions): GceClients {
  const o: ComputeClientOptions = { ...options, fallback: true };
  return {
    instances: new InstancesClient(o),
    images: new ImagesClient(o),
    disks: new DisksClient(o),
    firewalls: new FirewallsClient(o),
    zoneOperations: new ZoneOperationsClient(o),
    globalOperations: new GlobalOperationsClient(o),
  };
}

export async function closeClients(clients: GceClients): Promise<void> {
  await Promise.all(Object.values(clients).map((c: { close(): Promise<void> }) => c.close()));
}

export interface RetryPolicy {
  /** Retries after the first attempt (default 8). */
  retries: number;
  /** First backoff (default 1 s), doubling up to maxTimeoutMs (default 30 s), randomized. */
  minTimeoutMs: number;
  maxTimeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 8, minTimeoutMs: 1_000, maxTimeoutMs: 30_000 };

/** Where an API call reports and what stops it. */
export interface Scope {
  log: (line: string) => void;
  signal?: AbortSignal;
}

export class GceApi {
  constructor(
    readonly clients: GceClients,
    private readonly retry: RetryPolicy = DEFAULT_RETRY,
    /** First delay between polls of a condition (operations, image status, host keys). */
    readonly pollMs = 1_000,
  ) {}

  /** Runs one SDK call, retrying transient failures; anything else becomes a CLOUD KilnError. */
  async call<T>(scope: Scope, what: string, resource: string, run: () => Promise<T>): Promise<T> {
    try {
      return await pRetry(run, {
        retries: this.retry.retries,
        minTimeout: this.retry.minTimeoutMs,
        maxTimeout: this.retry.maxTimeoutMs,
        factor: 2,
        randomize: true,
        signal: scope.signal,
        shouldRetry: ({ error }) => isTransient(apiFailure(error)),
        onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
          const f = apiFailure(error);
          if (isTransient(f) && retriesLeft > 0) {
            scope.log(`gcp: ${what} ${resource}: ${f.reason ?? f.network ?? f.status} (attempt ${attemptNumber}), retrying`);
          }
        },
      });
    } catch (err) {
      if (scope.signal?.aborted) throw new KilnError('INTERRUPTED', `GCE: ${what} ${resource} was interrupted`, { resource }, { cause: err });
      throw cloudError(err, what, resource);
    }
  }
}
