/**
 * Client options from the environment: the REST transport, and `KILN_GCE_ENDPOINT` (e.g.
 * http://127.0.0.1:8080, a private endpoint or a proxy) in place of compute.googleapis.com.
 * Credentials stay Application Default Credentials.
 */
import { KilnError } from '../../core/errors.js';
import type { ComputeClientOptions } from './client.js';

/** Client options from the environment: REST transport, and the endpoint override if set. */
export function environmentClientOptions(env: NodeJS.ProcessEnv = process.env): ComputeClientOptions {
  const endpoint = env.KILN_GCE_ENDPOINT?.trim();
  if (!endpoint) return { fallback: true };
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new KilnError('INPUT', `KILN_GCE_ENDPOINT is not a URL: ${endpoint}`, { field: 'KILN_GCE_ENDPOINT' });
  }
  const protocol = url.protocol.replace(/:$/, '');
  const port = url.port ? Number(url.port) : protocol === 'http' ? 80 : 443;
  return { fallback: true, apiEndpoint: url.hostname, port, protocol } as ComputeClientOptions;
}
