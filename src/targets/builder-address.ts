/**
 * Where SSH to a build VM may come from: the plan's sshCidr, else this builder's own public address
 * as a host route (/32 or /128). The lookup is a small pluggable function (tests pass one returning
 * 127.0.0.1); the default takes $KILN_BUILDER_ADDRESS when set (a CI runner with a known egress
 * address and no route to those services), else asks two well-known "what is my IP" services and
 * accepts only an IP.
 */
import { isIP } from 'node:net';
import { InputError, KilnError } from '../core/errors.js';

/** Returns this machine's public address, as the cloud will see our SSH connections. */
export type BuilderAddressLookup = (signal?: AbortSignal) => Promise<string>;

const SERVICES = ['https://checkip.amazonaws.com', 'https://api.ipify.org'];

export const lookupPublicAddress: BuilderAddressLookup = async (signal) => {
  const given = process.env.KILN_BUILDER_ADDRESS?.trim();
  if (given) {
    if (isIP(given) === 0) throw new InputError({ field: 'KILN_BUILDER_ADDRESS', message: `expected an IPv4 or IPv6 address, found ${JSON.stringify(given)}` });
    return given;
  }
  const problems: string[] = [];
  for (const url of SERVICES) {
    try {
      const timeout = AbortSignal.timeout(10_000);
      const response = await fetch(url, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
      const text = (await response.text()).trim();
      if (response.ok && isIP(text) !== 0) return text;
      problems.push(`${url}: HTTP ${response.status} ${text.slice(0, 40)}`);
    } catch (err) {
      signal?.throwIfAborted();
      problems.push(`${url}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new KilnError('CLOUD', `could not find this builder's public address to allow SSH from (${problems.join('; ')}); set sshCidr in the definition's target`, {
    field: 'sshCidr',
  });
};

/** The source SSH is allowed from: the plan's CIDR as given, else the builder's address /32 or /128. */
export async function sshSource(sshCidr: string | undefined, lookup: BuilderAddressLookup, signal?: AbortSignal): Promise<string> {
  if (sshCidr) {
    const [address, prefix] = sshCidr.split('/');
    const family = isIP(address ?? '');
    const bits = Number(prefix);
    if (family === 0 || prefix === undefined || !Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128)) {
      throw new KilnError('INPUT', `sshCidr '${sshCidr}' is not a CIDR block`, { field: 'sshCidr' });
    }
    return sshCidr;
  }
  const address = (await lookup(signal)).trim();
  const family = isIP(address);
  if (family === 0) throw new KilnError('CLOUD', `the builder address lookup returned '${address}', not an IP address`, { field: 'sshCidr' });
  return `${address}/${family === 4 ? 32 : 128}`;
}

/** True for a source that lets the whole Internet in. */
export function isOpenToAll(source: string): boolean {
  return ['*', '0.0.0.0/0', '::/0', 'internet', 'any'].includes(source.trim().toLowerCase());
}
