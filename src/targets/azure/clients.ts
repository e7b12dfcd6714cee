/**
 * The three ARM clients for one subscription, with their options in one place: the credential
 * (DefaultAzureCredential unless one is injected), an endpoint override (KILN_AZURE_ENDPOINT, for
 * sovereign clouds, Azure Stack or a fake), bounded retries (the SDKs' retry policy retries 429 and
 * 5xx, honouring Retry-After), the run's rate limiter (a pipeline policy, see rate-limit.ts) and the
 * poll interval every long-running operation uses.
 */
import type { Agent } from 'node:https';
import { ComputeManagementClient, type ComputeManagementClientOptionalParams } from '@azure/arm-compute';
import { NetworkManagementClient, type NetworkManagementClientOptionalParams } from '@azure/arm-network';
import { ResourceManagementClient, type ResourceManagementClientOptionalParams } from '@azure/arm-resources';
import type { TokenCredential } from '@azure/identity';
import { KilnError } from '../../core/errors.js';
import { RateLimits } from '../rate-limits.js';
import { rateLimitPolicy } from './rate-limit.js';

/** What every SDK call may carry: the poll interval for LROs and the abort signal. */
export interface CallOptions {
  updateIntervalInMs: number;
  abortSignal?: AbortSignal;
}

/** Options passed to all three clients (the ones kiln sets; the SDKs accept more). */
export interface AzureClientOptions {
  /** Base URL of ARM (arm-compute and the base URI of the others). */
  endpoint?: string;
  /** Base URL of ARM for arm-network and arm-resources, which build URLs from it. */
  $host?: string;
  agent?: Agent;
  retryOptions?: { maxRetries?: number; retryDelayInMs?: number; maxRetryDelayInMs?: number };
  /** Extra pipeline policies (core-rest-pipeline `AdditionalPolicyConfig`s). */
  additionalPolicies?: unknown[];
}

export interface AzureConnectionOptions {
  /** Default: DefaultAzureCredential (environment, workload identity, managed identity, az login...). */
  credential?: TokenCredential;
  /** Merged over kiln's defaults; tests pass the fake's endpoint, agent and short retries here. */
  clientOptions?: AzureClientOptions;
  /** Poll interval of long-running operations; default 5 s (ARM's Retry-After wins when sent). */
  pollIntervalMs?: number;
  /** Subscription when neither the plan nor a ledger entry names one; default $AZURE_SUBSCRIPTION_ID. */
  subscriptionId?: string;
  /** The run's API rate limiters, shared with the other builds (default: the pool's own). */
  rateLimits?: RateLimits;
}

export interface AzureClients {
  subscription: string;
  resources: ResourceManagementClient;
  network: NetworkManagementClient;
  compute: ComputeManagementClient;
  /** Options for one call: poll interval and the step's signal. */
  call(signal?: AbortSignal): CallOptions;
}

export const DEFAULT_POLL_INTERVAL_MS = 5_000;
/** Bounded: a throttled or failing ARM is retried a few times, then the step fails. */
export const DEFAULT_RETRY = { maxRetries: 6, retryDelayInMs: 1_000, maxRetryDelayInMs: 60_000 };

/** Endpoint override from the environment, for both kinds of client. */
export function endpointFromEnv(env: NodeJS.ProcessEnv = process.env): AzureClientOptions {
  const url = env.KILN_AZURE_ENDPOINT?.trim();
  if (!url) return {};
  return { endpoint: url.replace(/\/+$/, ''), $host: url.replace(/\/+$/, '') };
}

export function subscriptionFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.AZURE_SUBSCRIPTION_ID?.trim() || undefined;
}

/** Makes (and caches per subscription) the clients; the credential is created once, lazily. */
export class AzureClientPool {
  private credential: Promise<TokenCredential> | undefined;
  private readonly bySubscription = new Map<string, AzureClients>();
  private readonly limits: RateLimits;

  constructor(private readonly options: AzureConnectionOptions = {}) {
    this.limits = options.rateLimits ?? new RateLimits();
  }

  /** The subscription to use: the one given, else the driver's option, else the environment. */
  subscriptionFor(given?: string): string {
    const subscription = given ?? this.options.subscriptionId ?? subscriptionFromEnv();
    if (!subscription) {
      throw new KilnError('INPUT', 'no Azure subscription: set targets.azure.subscriptionId in the definition or AZURE_SUBSCRIPTION_ID', {
        field: 'targets.azure.subscriptionId',
      });
    }
    return subscription;
  }

  hasSubscription(): boolean {
    return Boolean(this.options.subscriptionId ?? subscriptionFromEnv());
  }

  async clients(subscription?: string): Promise<AzureClients> {
    const sub = this.subscriptionFor(subscription);
    const cached = this.bySubscription.get(sub);
    if (cached) return cached;
    const credential = await this.getCredential();
    const options: AzureClientOptions = {
      ...endpointFromEnv(),
      ...this.options.clientOptions,
      retryOptions: { ...DEFAULT_RETRY, ...this.options.clientOptions?.retryOptions },
      additionalPolicies: [...(this.options.clientOptions?.additionalPolicies ?? []), rateLimitPolicy(this.limits, sub)],
    };
    const updateIntervalInMs = this.options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    const clients: AzureClients = {
      subscription: sub,
      resources: new ResourceManagementClient(credential, sub, options as ResourceManagementClientOptionalParams),
      network: new NetworkManagementClient(credential, sub, options as NetworkManagementClientOptionalParams),
      compute: new ComputeManagementClient(credential, sub, options as ComputeManagementClientOptionalParams),
      call: (signal) => ({ updateIntervalInMs, ...(signal ? { abortSignal: signal } : {}) }),
    };
    this.bySubscription.set(sub, clients);
    return clients;
  }

  private getCredential(): Promise<TokenCredential> {
    if (this.options.credential) return Promise.resolve(this.options.credential);
    // Loaded only when needed: tests inject a credential and never pay for MSAL.
    this.credential ??= import('@azure/identity').then(({ DefaultAzureCredential }) => new DefaultAzureCredential());
    return this.credential;
  }
}
