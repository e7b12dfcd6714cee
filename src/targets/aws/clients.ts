/**
 * EC2 clients, one per region (the SigV4 scope names the region, so a region's calls go through its
 * own client), built from the SDK's default chains: credentials, region and the endpoint override
 * `AWS_ENDPOINT_URL_EC2` all come from the environment/config files unless the driver options say
 * otherwise (tests pass the fake's endpoint and static credentials). Every attempt first waits for
 * its turn in the run's limiter of the account and region (rate-limit.ts). Throttling and 5xx
 * answers are retried by the SDK (adaptive mode: backoff plus client-side rate limiting); what the
 * SDK cannot know, a resource not yet visible right after its create call, is retried here within a
 * window.
 */
import { EC2Client, type EC2ClientConfig } from '@aws-sdk/client-ec2';
import { KilnError } from '../../core/errors.js';
import { done, notYet, waitFor } from '../../core/wait.js';
import { RateLimits } from '../rate-limits.js';
import { cloudError, isNotFound, type Ec2Context } from './errors.js';
import { limitEc2Client } from './rate-limit.js';

/** The SDK's retry settings kiln uses unless the options override them. */
export const DEFAULT_CLIENT_CONFIG: Partial<EC2ClientConfig> = { retryMode: 'adaptive', maxAttempts: 10 };

export interface Ec2Timing {
  /** First delay between kiln's own polls, in ms (doubles up to 15 s). */
  pollMs: number;
  /** SDK waiters' delays, in seconds (EC2's own defaults are 15 and 120). */
  waiterMinDelay: number;
  waiterMaxDelay: number;
  /** How long a resource may stay invisible (`*.NotFound`) after the call that created it. */
  consistencyMs: number;
}

export const DEFAULT_TIMING: Ec2Timing = { pollMs: 2_000, waiterMinDelay: 5, waiterMaxDelay: 30, consistencyMs: 2 * 60_000 };

/** What a call is about and what may abort it. */
export interface CallScope extends Ec2Context {
  signal?: AbortSignal;
}

type WaiterResultLike = { state: string; reason?: unknown };
type WaiterParams = { client: EC2Client; maxWaitTime: number; minDelay: number; maxDelay: number; abortSignal?: AbortSignal };

export class Ec2Api {
  private readonly clients = new Map<string, EC2Client>();
  private fallbackRegion?: Promise<string>;

  constructor(
    private readonly config: Partial<EC2ClientConfig> = {},
    readonly timing: Ec2Timing = DEFAULT_TIMING,
    /** The run's limiters: every request waits for its account and region's turn. */
    private readonly limits: RateLimits = new RateLimits(),
  ) {}

  client(region: string): EC2Client {
    let client = this.clients.get(region);
    if (!client) {
      client = new EC2Client({ ...DEFAULT_CLIENT_CONFIG, ...this.config, region });
      limitEc2Client(client, this.limits, region);
      this.clients.set(region, client);
    }
    return client;
  }

  /** The region of the SDK's default chain (AWS_REGION, the profile's region...). */
  async defaultRegion(): Promise<string> {
    this.fallbackRegion ??= (async () => {
      const probe = new EC2Client({ ...DEFAULT_CLIENT_CONFIG, ...this.config });
      try {
        return await probe.config.region();
      } catch (err) {
        throw new KilnError('INPUT', 'no AWS region: set AWS_REGION (or a profile region), or KILN_AWS_REGIONS for cleanup', { field: 'AWS_REGION' }, { cause: err });
      } finally {
        probe.destroy();
      }
    })();
    return this.fallbackRegion;
  }

  /**
   * One API call through the region's client; a failure becomes a CLOUD KilnError naming the action,
   * EC2's code and the resource. `send` gets the client and the options carrying the abort signal.
   */
  async call<T>(action: string, scope: CallScope, send: (client: EC2Client, options: { abortSignal?: AbortSignal }) => Promise<T>): Promise<T> {
    scope.signal?.throwIfAborted();
    try {
      return await send(this.client(scope.region), { abortSignal: scope.signal });
    } catch (err) {
      scope.signal?.throwIfAborted();
      throw cloudError(action, scope, err);
    }
  }

  /**
   * A call about a resource that was just created: `*.NotFound` is EC2's eventual consistency, not
   * an answer, until `consistencyMs` after `since` (default: now). Other errors end it at once.
   */
  async callVisible<T>(
    action: string,
    scope: CallScope,
    send: (client: EC2Client, options: { abortSignal?: AbortSignal }) => Promise<T>,
    since = Date.now(),
  ): Promise<T> {
    const until = since + this.timing.consistencyMs;
    return waitFor(
      async () => {
        try {
          return done(await this.call(action, scope, send));
        } catch (err) {
          if (isNotFound(err) && Date.now() < until) return notYet(err);
          throw err;
        }
      },
      { what: `${scope.resource} to be visible to ${action}`, timeoutMs: this.timing.consistencyMs + 1, initialDelayMs: this.timing.pollMs, maxDelayMs: 15_000, signal: scope.signal },
    );
  }

  /**
   * Runs one of the SDK's waiters (`waitForInstanceRunning`, the non-throwing form of
   * `waitUntilInstanceRunning`, and the like) under a deadline; returns the last describe output.
   * A waiter's failure state (e.g. an instance that went to `terminated` while we waited for
   * `running`) becomes a CLOUD error with what `describeFailure` reads from that output.
   */
  async waitUntil<I, R extends WaiterResultLike>(
    waiter: (params: WaiterParams, input: I) => Promise<R>,
    input: I,
    options: CallScope & { what: string; timeoutMs: number; describeFailure?: (reason: unknown) => string },
  ): Promise<unknown> {
    const maxWaitTime = Math.max(options.timeoutMs / 1000, this.timing.waiterMinDelay * 2);
    const result = await waiter(
      { client: this.client(options.region), maxWaitTime, minDelay: this.timing.waiterMinDelay, maxDelay: this.timing.waiterMaxDelay, abortSignal: options.signal },
      input,
    );
    if (result.state === 'SUCCESS') return result.reason;
    options.signal?.throwIfAborted();
    const context = { resource: options.resource, region: options.region };
    if (result.state === 'TIMEOUT') {
      throw new KilnError('TIMEOUT', `timed out after ${Math.round(maxWaitTime)}s waiting for ${options.what}`, { ...context, waitingFor: options.what });
    }
    const seen = options.describeFailure?.(result.reason) ?? describeReason(result.reason);
    throw new KilnError('CLOUD', `EC2: gave up waiting for ${options.what}: ${seen}`, { ...context, code: codeFrom(result.reason) ?? result.state });
  }

  destroy(): void {
    for (const client of this.clients.values()) client.destroy();
    this.clients.clear();
  }
}

function describeReason(reason: unknown): string {
  if (reason instanceof Error) return `${reason.name}: ${reason.message}`;
  return 'the resource reached a state it cannot leave';
}

function codeFrom(reason: unknown): string | undefined {
  return reason instanceof Error ? reason.name : undefined;
}
