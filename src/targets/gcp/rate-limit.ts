/**
 * Puts every Compute Engine request through the run's limiter of its project and region: each
 * client is wrapped so that an API method, called with its request object (which names the
 * `project`, and the `zone` or `region` for zonal and regional methods), waits for its turn. GceApi
 * retries by calling the method again, so every attempt waits. Compute Engine counts global
 * methods per project and zonal/regional ones per project and region: global calls share the
 * `global` key.
 *
 * Left alone: private members, methods without a request object (path helpers, getProjectId,
 * close) and the streaming and async-iterator forms (`*Stream`, `*Async`): the latter page through
 * the unwrapped method internally (the sweep's aggregatedList), so they are not counted.
 */
import type { ApiCallKind, RateLimits } from '../rate-limits.js';
import type { GceClients } from './client.js';

interface GceRequest {
  project?: unknown;
  zone?: unknown;
  region?: unknown;
}

export function limitClients(clients: GceClients, limits: RateLimits): GceClients {
  const wrap = <C extends object>(client: C): C =>
    new Proxy(client, {
      get(target, property, receiver) {
        const value: unknown = Reflect.get(target, property, receiver);
        // Private members (`_log` is a callable logger with methods of its own) pass through as they are.
        if (typeof value !== 'function' || typeof property !== 'string' || property.startsWith('_') || /(Stream|Async)$/.test(property)) return value;
        const method = value as (...args: unknown[]) => unknown;
        return (...args: unknown[]) => {
          const request = args[0] as GceRequest | undefined;
          if (typeof request !== 'object' || request === null || typeof request.project !== 'string') return method.apply(target, args);
          const limiter = limits.for({ target: 'gcp', account: request.project, region: regionOf(request) });
          return limiter.schedule(gceCallKind(property), async () => method.apply(target, args));
        };
      },
    });
  return {
    instances: wrap(clients.instances),
    images: wrap(clients.images),
    disks: wrap(clients.disks),
    firewalls: wrap(clients.firewalls),
    zoneOperations: wrap(clients.zoneOperations),
    globalOperations: wrap(clients.globalOperations),
  };
}

/** Compute Engine's read requests are its get, list and operation-wait methods. */
export function gceCallKind(method: string): ApiCallKind {
  return /^(get|list|aggregatedList|wait)/.test(method) ? 'read' : 'write';
}

/** `us-central1-a` -> `us-central1`; a regional request's region; `global` for the rest. */
export function regionOf(request: GceRequest): string {
  if (typeof request.zone === 'string') return request.zone.replace(/-[a-z]$/, '');
  if (typeof request.region === 'string') return request.region;
  return 'global';
}
