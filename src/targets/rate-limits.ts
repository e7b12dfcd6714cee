/**
 * Request-rate limits for the cloud APIs. The clouds throttle per account (subscription, project)
 * and region, whatever process or build a request comes from, so kiln keeps one limiter per
 * (target, account, region) for the whole run: fifteen concurrent builds then share one budget
 * instead of each sending at the full rate and throttling the others. Each SDK is hooked once (the
 * EC2 middleware stack, the ARM pipeline, a wrapper around the Compute Engine clients), after its
 * retry logic, so every attempt draws from the budget; throttling that still happens (other tools
 * on the same account) is retried with backoff as before.
 *
 * The defaults are the providers' documented sustained rates (the refill rates of their token
 * buckets, without the bursts), split into reads and writes where the provider counts them apart.
 * `--api-rate` overrides them, e.g. for an account whose limits were raised.
 */
import pThrottle from 'p-throttle';

export const RATE_LIMITED_TARGETS = ['aws', 'gcp', 'azure'] as const;
export type RateLimitedTarget = (typeof RATE_LIMITED_TARGETS)[number];

export const API_CALL_KINDS = ['read', 'write'] as const;
export type ApiCallKind = (typeof API_CALL_KINDS)[number];

/** Requests per second, by kind. */
export type ApiRates = Record<ApiCallKind, number>;
export type ApiRateOverrides = Partial<Record<RateLimitedTarget, Partial<ApiRates>>>;

export const DEFAULT_API_RATES: Record<RateLimitedTarget, ApiRates> = {
  // EC2 throttles per account and region with a token bucket per action: non-mutating actions
  // refill at 20 a second, mutating ones at 5 (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html).
  aws: { read: 20, write: 5 },
  // Compute Engine counts per project and minute: 1,500 read requests and 1,500 other requests by
  // default, each group on its own (cloud.google.com/compute/api-quota).
  gcp: { read: 25, write: 25 },
  // Azure Resource Manager throttles per subscription and region: reads refill at 25 a second,
  // writes and deletes at 10 (learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling).
  azure: { read: 25, write: 10 },
};

/** Who the cloud counts a request against. */
export interface LimiterKey {
  target: RateLimitedTarget;
  /** AWS account (or access key), Azure subscription, GCP project. */
  account: string;
  /** AWS region, the ARM endpoint (ARM counts per region of the instance serving the caller), GCE region or `global`. */
  region: string;
}

export interface LimiterCounts {
  /** Requests that went through the limiter. */
  calls: number;
  /** Of those, how many had to wait for their turn. */
  delayed: number;
}

type Throttled = (run: () => Promise<unknown>) => Promise<unknown>;

/** The limiter of one key: a throttle per kind of call. */
export class ApiLimiter {
  readonly counts: Record<ApiCallKind, LimiterCounts> = { read: { calls: 0, delayed: 0 }, write: { calls: 0, delayed: 0 } };
  private readonly throttles: Record<ApiCallKind, Throttled>;

  constructor(
    readonly key: LimiterKey,
    readonly rates: ApiRates,
  ) {
    const throttle = (kind: ApiCallKind): Throttled => {
      const { limit, interval } = throttleWindow(rates[kind]);
      return pThrottle({ limit, interval, strict: true, onDelay: () => this.counts[kind].delayed++ })((run: () => Promise<unknown>) => run());
    };
    this.throttles = { read: throttle('read'), write: throttle('write') };
  }

  get name(): string {
    return keyName(this.key);
  }

  /**
   * Runs `run` when this key's budget for `kind` allows. An abort while waiting rejects at once with
   * the signal's reason (the call is then never made); once started, the call is the caller's.
   */
  async schedule<T>(kind: ApiCallKind, run: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    this.counts[kind].calls++;
    let started = false;
    const turn = this.throttles[kind](() => {
      if (signal?.aborted) return Promise.reject(signal.reason as Error);
      started = true;
      return run();
    }) as Promise<T>;
    if (!signal) return turn;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        if (!started) reject(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      turn.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }
}

/** Every limiter of a run, made on first use of a key. One instance is shared by all drivers. */
export class RateLimits {
  private readonly limiters = new Map<string, ApiLimiter>();
  private readonly rates: Record<RateLimitedTarget, ApiRates>;

  constructor(overrides: ApiRateOverrides = {}) {
    this.rates = { ...DEFAULT_API_RATES };
    for (const target of RATE_LIMITED_TARGETS) this.rates[target] = { ...DEFAULT_API_RATES[target], ...overrides[target] };
  }

  ratesOf(target: RateLimitedTarget): ApiRates {
    return this.rates[target];
  }

  for(key: LimiterKey): ApiLimiter {
    const name = keyName(key);
    let limiter = this.limiters.get(name);
    if (!limiter) {
      limiter = new ApiLimiter({ ...key }, this.rates[key.target]);
      this.limiters.set(name, limiter);
    }
    return limiter;
  }

  /** The limiters made so far, in order of first use. */
  all(): ApiLimiter[] {
    return [...this.limiters.values()];
  }
}

export function keyName(key: LimiterKey): string {
  return `${key.target}/${key.account}/${key.region}`;
}

/** A rate as p-throttle's whole number of calls per interval: 2.5/s is 2 calls per 800 ms. */
function throttleWindow(perSecond: number): { limit: number; interval: number } {
  if (!(perSecond > 0) || !Number.isFinite(perSecond)) throw new RangeError(`a request rate must be a positive number, not ${perSecond}`);
  const limit = Math.max(1, Math.floor(perSecond));
  return { limit, interval: (limit / perSecond) * 1000 };
}
