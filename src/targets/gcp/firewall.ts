/**
 * The build's temporary firewall rule: INGRESS tcp:22 from the builder only (the plan's sshCidr, or
 * this machine's public IPv4 address /32, found by a small pluggable lookup) to the instances that
 * carry the build's network tag. Never 0.0.0.0/0 unless the plan's sshCidr says so.
 */
import { isIP, isIPv4 } from 'node:net';
import { KilnError } from '../../core/errors.js';
import type { GceApi, Scope } from './client.js';
import { isNotFound } from './errors.js';
import { describeTags } from './labels.js';
import { runOperation } from './operations.js';

/** Returns this machine's public address, as the VM will see it (tests return 127.0.0.1). */
export type BuilderAddressLookup = (signal?: AbortSignal) => Promise<string>;

const SERVICES = ['https://api.ipify.org', 'https://checkip.amazonaws.com'];

export const lookupPublicAddress: BuilderAddressLookup = async (signal) => {
  const problems: string[] = [];
  for (const url of SERVICES) {
    try {
      const timeout = AbortSignal.timeout(10_000);
      const response = await fetch(url, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
      const text = (await response.text()).trim();
      if (response.ok && isIPv4(text)) return text;
      problems.push(`${url}: HTTP ${response.status} ${text.slice(0, 40)}`);
    } catch (err) {
      signal?.throwIfAborted();
      problems.push(`${url}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new KilnError('CLOUD', `could not find this builder's public address to allow SSH from (${problems.join('; ')}); set targets.gcp.sshCidr`, {
    field: 'targets.gcp.sshCidr',
  });
};

/** The rule's source range: the plan's CIDR as given, else the builder's address as a host route. */
export async function sshSourceRange(sshCidr: string | undefined, lookup: BuilderAddressLookup, signal?: AbortSignal): Promise<string> {
  if (sshCidr) return sshCidr;
  const address = (await lookup(signal)).trim();
  const family = isIP(address);
  if (family === 0) throw new KilnError('CLOUD', `the builder address lookup returned '${address}', not an IP address`, { field: 'targets.gcp.sshCidr' });
  return `${address}/${family === 4 ? 32 : 128}`;
}

/** `default` -> `global/networks/default`; a path or URL is used as given. */
export function networkRef(network: string): string {
  return network.includes('/') ? network : `global/networks/${network}`;
}

export const firewallPath = (project: string, name: string): string => `projects/${project}/global/firewalls/${name}`;

export interface SshFirewall {
  project: string;
  name: string;
  network: string;
  sourceRange: string;
  targetTag: string;
  tags: Record<string, string>;
}

export async function insertSshFirewall(api: GceApi, scope: Scope, rule: SshFirewall, timeoutMs: number): Promise<string> {
  const resource = firewallPath(rule.project, rule.name);
  await runOperation(api, scope, { project: rule.project, what: 'creating firewall rule', resource }, timeoutMs, (requestId) =>
    api.clients.firewalls.insert({
      project: rule.project,
      requestId,
      firewallResource: {
        name: rule.name,
        description: `kiln build SSH access (temporary): ${describeTags(rule.tags)}`.slice(0, 2048),
        network: networkRef(rule.network),
        direction: 'INGRESS',
        priority: 1000,
        sourceRanges: [rule.sourceRange],
        targetTags: [rule.targetTag],
        allowed: [{ IPProtocol: 'tcp', ports: ['22'] }],
      },
    }),
  );
  return resource;
}

export async function deleteFirewall(api: GceApi, scope: Scope, project: string, name: string, timeoutMs: number): Promise<void> {
  const resource = firewallPath(project, name);
  try {
    await runOperation(api, scope, { project, what: 'deleting firewall rule', resource }, timeoutMs, (requestId) =>
      api.clients.firewalls.delete({ project, firewall: name, requestId }),
    );
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
