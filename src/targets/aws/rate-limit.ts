/**
 * Puts every EC2 request through the run's limiter of its account and region: a middleware placed
 * right after the SDK's retry middleware, so each attempt (retries included) waits for its turn, and
 * before signing, so a request that waited is signed when it is sent.
 *
 * The account is the credentials' account id where the credential chain knows it (SSO, assumed
 * roles, AWS_ACCOUNT_ID), else the access key id, which belongs to exactly one account.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { ApiCallKind, RateLimits } from '../rate-limits.js';

export const RATE_LIMIT_MIDDLEWARE = 'kilnRateLimit';

type Next = (args: unknown) => Promise<unknown>;

export function limitEc2Client(client: EC2Client, limits: RateLimits, region: string): void {
  const account = async () => {
    const credentials = await client.config.credentials();
    return credentials.accountId ?? credentials.accessKeyId;
  };
  const middleware = (next: Next, context: { commandName?: string }) => async (args: unknown) => {
    const limiter = limits.for({ target: 'aws', account: await account(), region });
    return limiter.schedule(ec2CallKind(context.commandName ?? ''), () => next(args));
  };
  client.middlewareStack.addRelativeTo(middleware as unknown as Parameters<EC2Client['middlewareStack']['addRelativeTo']>[0], {
    relation: 'after',
    toMiddleware: 'retryMiddleware',
    name: RATE_LIMIT_MIDDLEWARE,
  });
}

/** EC2's non-mutating actions (its cheaper bucket) are the Describe*, Get* and List* ones. */
export function ec2CallKind(commandName: string): ApiCallKind {
  return /^(Describe|Get|List)/.test(commandName) ? 'read' : 'write';
}
