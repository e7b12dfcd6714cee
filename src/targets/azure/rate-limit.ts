/**
 * Puts every ARM request through the run's limiter of its subscription: a pipeline policy that runs
 * once per attempt (position `perRetry`, inside the SDKs' retry policy), added to all three clients.
 * ARM counts a subscription's requests per region of the ARM instance that serves them, and one
 * builder is always served by the same one, so the region part of the key is the endpoint's host.
 * Long-running-operation polls go through the same pipeline and count as reads.
 */
import type { ApiCallKind, RateLimits } from '../rate-limits.js';

export const RATE_LIMIT_POLICY = 'kilnRateLimit';

/** The parts of core-rest-pipeline's request and policy that the limiter needs. */
interface PipelineRequest {
  url: string;
  method: string;
  abortSignal?: AbortSignal;
}

export interface RateLimitPolicy {
  policy: { name: string; sendRequest<R>(request: PipelineRequest, next: (request: PipelineRequest) => Promise<R>): Promise<R> };
  position: 'perRetry';
}

export function rateLimitPolicy(limits: RateLimits, subscription: string): RateLimitPolicy {
  return {
    position: 'perRetry',
    policy: {
      name: RATE_LIMIT_POLICY,
      sendRequest: (request, next) => {
        const limiter = limits.for({ target: 'azure', account: subscription, region: new URL(request.url).host });
        return limiter.schedule(armCallKind(request.method), () => next(request), request.abortSignal);
      },
    },
  };
}

/** ARM's read bucket takes GET and HEAD; writes and deletes have buckets of the same size. */
export function armCallKind(method: string): ApiCallKind {
  return method === 'GET' || method === 'HEAD' ? 'read' : 'write';
}
