/**
 * Constructor options that point the unmodified `@google-cloud/compute` v1 clients at a running
 * fake, with no network beyond 127.0.0.1 and no call to Google:
 *
 *   const clients = { instances: new InstancesClient(gceClientOptions(fake.url)), ... }
 *
 * How it works (google-gax 5 REST fallback, which Compute uses by default):
 * - `apiEndpoint` (the host) + `port` + `protocol: 'http'` are what the fallback stub builds its URLs
 *   from: `${protocol}://${servicePath}:${port}/compute/v1/...`. `protocol` is passed through the
 *   client options to `GrpcClient.createStub`; without it the stub uses https.
 * - `authClient`: an OAuth2Client holding a static access token and no refresh token. The stub calls
 *   `authClient.fetch()`, which adds `Authorization: Bearer <token>` and never refreshes (no expiry),
 *   so no token endpoint or metadata server is contacted. `GoogleAuth`/ADC is never constructed.
 * - `fallback: true` is the Compute default anyway (REST transport); set for clarity.
 *
 * What the SDK then surfaces on an HTTP error (this google-gax/gaxios pair): a `GaxiosError` whose
 * `status` and `code` are the HTTP status (404, 409, 429, 503...), not gRPC codes, and whose `message`
 * is the raw JSON error body, so `JSON.parse(err.message).error.errors[0].reason` gives the API reason
 * (notFound, alreadyExists, ...). The SDK retries nothing in this mode (its retry codes are gRPC codes).
 */
import type { InstancesClient } from '@google-cloud/compute';
import { OAuth2Client } from 'google-auth-library';

/** The options every `@google-cloud/compute` v1 client constructor accepts. */
export type ComputeClientOptions = NonNullable<ConstructorParameters<typeof InstancesClient>[0]>;

export interface FakeClientOptions {
  /** Project id the client reports from getProjectId() (the fake accepts any project in URLs). */
  projectId?: string;
  /** Static bearer token (the fake only checks that one is present). */
  accessToken?: string;
}

export function gceClientOptions(url: string, options: FakeClientOptions = {}): ComputeClientOptions {
  const { hostname, port, protocol } = new URL(url);
  if (protocol !== 'http:' || hostname !== '127.0.0.1') {
    throw new Error(`gceClientOptions expects the fake's http://127.0.0.1:<port> URL, got ${url}`);
  }
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: options.accessToken ?? 'fake-gce-access-token', token_type: 'Bearer' });
  return {
    apiEndpoint: hostname,
    port: Number(port),
    protocol: 'http',
    fallback: true,
    authClient,
    projectId: options.projectId ?? 'kiln-test',
  };
}
