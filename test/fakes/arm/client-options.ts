/**
 * How a test points the unmodified Azure SDK clients at a running ARM fake.
 *
 *   const fake = await startArmFake();
 *   const { credential, subscriptionId, options, pollOptions } = fake.clientOptions();
 *   const resources = new ResourceManagementClient(credential, subscriptionId, options);
 *   const network = new NetworkManagementClient(credential, subscriptionId, options);
 *   const compute = new ComputeManagementClient(credential, subscriptionId, options);
 *   await compute.virtualMachines.beginDeallocateAndWait(rg, vm, { ...pollOptions });
 *
 * What each option is for:
 *  - `$host` (arm-network 36, arm-resources 7: core-client clients build every URL from `$host`,
 *    which defaults to management.azure.com whatever `endpoint` says) and `endpoint` (arm-compute
 *    24, a TypeSpec client, uses only `endpoint`; the older clients use it as their base URI).
 *  - `agent`: an https.Agent trusting only the fake's self-signed certificate. The fake speaks
 *    HTTPS because every client's bearerTokenAuthenticationPolicy refuses to send a token to an
 *    http:// URL; `allowInsecureConnection: true` does not lift that check, so it is not used. A
 *    custom agent also keeps any HTTPS_PROXY in the environment out of the way.
 *  - `credential`: a TokenCredential returning a static token (test code only; the fake checks
 *    that a bearer token is present, and that it is this one if started with `token`).
 *  - `retryOptions`: short delays so injected 5xx retries take milliseconds. A 429's Retry-After
 *    is honoured as sent (seconds; the fake's default is 1).
 *  - `pollOptions.updateIntervalInMs`: not a client option; pass it to every `begin...` or poller call.
 *    Without it the pollers wait 2 s (core-lro's default) between polls. The fake sends no
 *    Retry-After on LRO responses unless asked to, since the pollers would prefer it.
 */
import { Agent } from 'node:https';
import type { AccessToken, TokenCredential } from '@azure/identity';

export interface ArmClientOptions {
  endpoint: string;
  $host: string;
  agent: Agent;
  retryOptions: { maxRetries: number; retryDelayInMs: number; maxRetryDelayInMs: number };
}

export interface ArmClientSetup {
  credential: TokenCredential;
  subscriptionId: string;
  /** Pass as the clients' options argument (all three SDKs accept it). */
  options: ArmClientOptions;
  /** Spread into every `begin*` / poller call. */
  pollOptions: { updateIntervalInMs: number };
}

export interface ArmClientSetupOptions {
  token?: string;
  pollIntervalMs?: number;
  maxRetries?: number;
}

/** A TokenCredential that always returns `token`. Test code only. */
export function staticTokenCredential(token = 'kiln-arm-fake-token'): TokenCredential {
  return {
    getToken: async (): Promise<AccessToken> => ({ token, expiresOnTimestamp: Date.now() + 3_600_000 }),
  };
}

/** Client setup for a fake listening on `url` with the certificate `ca`. */
export function armClientSetup(
  fake: { url: string; ca: string; subscriptionId: string },
  opts: ArmClientSetupOptions = {},
): ArmClientSetup {
  return {
    credential: staticTokenCredential(opts.token),
    subscriptionId: fake.subscriptionId,
    options: {
      endpoint: fake.url,
      $host: fake.url,
      agent: new Agent({ ca: fake.ca, keepAlive: true }),
      retryOptions: { maxRetries: opts.maxRetries ?? 3, retryDelayInMs: 10, maxRetryDelayInMs: 100 },
    },
    pollOptions: { updateIntervalInMs: opts.pollIntervalMs ?? 10 },
  };
}
