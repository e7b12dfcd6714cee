/**
 * The build's temporary firewall rule: INGRESS tcp:22 from the builder only (the plan's sshCidr, or
 * this machine's public IPv4 address /32, found by a small pluggable lookup) to the instances that
 * carry the build's network tag. Never 0.0.0.0/0 unless the plan's sshCidr says so.
 */
import type { GceApi, Scope } from './client.js';
import { isNotFound } from './errors.js';
import { describeTags } from './labels.js';
import { runOperation } from './operations.js';

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

/** Deletes the rule; false when it was not there. */
export async function deleteFirewall(api: GceApi, scope: Scope, project: string, name: string, timeoutMs: number): Promise<boolean> {
  const resource = firewallPath(project, name);
  try {
    await runOperation(api, scope, { project, what: 'deleting firewall rule', resource }, timeoutMs, (requestId) =>
      api.clients.firewalls.delete({ project, firewall: name, requestId }),
    );
    return true;
  } catch (err) {
    if (!isNotFound(err)) throw err;
    return false;
  }
}
