/**
 * Where SSH to the build VM may come from: the plan's sshCidr, else this builder's public IPv4
 * address as a /32. The lookup is a small pluggable function (tests pass one returning 127.0.0.1);
 * the default asks two well-known "what is my IP" services and accepts only a plain IPv4 answer.
 */
import { isIPv4 } from 'node:net';
import { KilnError } from '../../core/errors.js';

/** Returns this machine's public IPv4 address, as the VM will see it. */
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
  throw new KilnError('CLOUD', `could not find this builder's public address to allow SSH from (${problems.join('; ')}); set targets.azure.sshCidr`, {
    field: 'targets.azure.sshCidr',
  });
};

/** The NSG source prefix for SSH: the plan's CIDR, or the builder's address /32. */
export async function sshSourcePrefix(sshCidr: string | undefined, lookup: BuilderAddressLookup, signal?: AbortSignal): Promise<string> {
  if (sshCidr) return sshCidr;
  const address = (await lookup(signal)).trim();
  if (!isIPv4(address)) throw new KilnError('CLOUD', `the builder address lookup returned '${address}', not an IPv4 address`, {});
  return `${address}/32`;
}

/** True for a prefix that lets the whole Internet in. */
export function isOpenToAll(prefix: string): boolean {
  return ['*', '0.0.0.0/0', 'internet', 'any'].includes(prefix.trim().toLowerCase());
}
