/**
 * Validators for the values a definition or a flag may carry into a build. They are strict on
 * purpose: every value here ends up in a cloud API call, a file on the VM or a script's environment,
 * and a value that looks like shell (`5.0.0; rm -rf /`, `$(reboot)`) is refused at the door. Scripts
 * still receive values only through environment variables and files, never spliced into source.
 */
import { z } from 'zod';

/** Product version: semantic version, optional pre-release and build (`5.2.0`, `5.2.0-rc.1`). */
export const PRODUCT_VERSION = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;
/** K3s release tag, e.g. `v1.29.6+k3s2`. */
export const K3S_VERSION = /^v\d+\.\d+\.\d+\+k3s\d+$/;
/** Helm release tag, e.g. `v3.14.4`. */
export const HELM_VERSION = /^v3\.\d+\.\d+$/;
/** Chart version: semantic version as Helm requires. */
export const CHART_VERSION = PRODUCT_VERSION;
/** Kubernetes object name (DNS-1123 label): chart, release and namespace names. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const SHA256 = /^[a-f0-9]{64}$/;
/** An absolute path on the VM: no spaces, no `..`, no shell characters. */
export const ABSOLUTE_PATH = /^\/(?!.*(?:^|\/)\.\.(?:\/|$))[A-Za-z0-9._\-/]*$/;
/** A path relative to a mount point, same character set, no leading slash. */
export const RELATIVE_PATH = /^(?!.*(?:^|\/)\.\.(?:\/|$))[A-Za-z0-9._-][A-Za-z0-9._\-/]*$/;
export const SYSCTL_KEY = /^[a-z0-9_]+(\.[a-z0-9_-]+)+$/;
/** Filesystem label: letters, digits, `-` and `_` (length is checked per filesystem). */
export const FS_LABEL = /^[A-Za-z0-9_-]{1,16}$/;
/** Linux user name as useradd accepts it, conservatively. */
export const UNIX_USER = /^[a-z_][a-z0-9_-]{0,30}$/;
/** Cloud identifiers (regions, zones, instance types, publisher/offer/sku): no shell characters. */
export const CLOUD_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

export const productVersion = z
  .string()
  .regex(PRODUCT_VERSION, 'a semantic version like 5.2.0 or 5.2.0-rc.1 (digits, dots, letters and hyphens only)');

export const absolutePath = z
  .string()
  .regex(ABSOLUTE_PATH, 'an absolute path of letters, digits, ".", "_", "-" and "/", without ".."');

export const relativePath = z
  .string()
  .regex(RELATIVE_PATH, 'a relative path of letters, digits, ".", "_", "-" and "/", without ".."');

export const cloudId = (what: string) => z.string().regex(CLOUD_ID, `${what}: letters, digits, ".", "_", ":" and "-"`);

export const dnsLabel = (what: string) =>
  z.string().regex(DNS_LABEL, `${what}: lowercase letters, digits and "-", starting and ending with a letter or digit, at most 63 characters`);

/** An http(s) URL with no credentials, whitespace or quotes in it. */
export const url = z.string().refine(isSafeUrl, 'an http:// or https:// URL without credentials, spaces or quotes');

export function isSafeUrl(value: string): boolean {
  if (/[\s'"`$\\<>]/.test(value)) return false;
  try {
    const parsed = new URL(value);
    return (parsed.protocol === 'https:' || parsed.protocol === 'http:') && !parsed.username && !parsed.password;
  } catch {
    return false;
  }
}

/** An IPv4 CIDR whose address is the network address (`10.10.0.0/16`, not `10.10.1.0/16`). */
export const ipv4Cidr = z.string().refine(isIpv4Network, 'an IPv4 network in CIDR form like 10.10.0.0/16 (host bits zero)');

export function parseIpv4Cidr(value: string): { address: number; prefix: number } | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  if (!match) return undefined;
  const octets = match.slice(1, 5).map(Number);
  const prefix = Number(match[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return undefined;
  const address = octets.reduce((acc, o) => acc * 256 + o, 0);
  return { address, prefix };
}

export function isIpv4Network(value: string): boolean {
  const cidr = parseIpv4Cidr(value);
  if (!cidr) return false;
  const hostBits = 32 - cidr.prefix;
  return hostBits === 32 ? cidr.address === 0 : cidr.address % 2 ** hostBits === 0;
}

/** True when two IPv4 networks share any address. */
export function cidrsOverlap(a: string, b: string): boolean {
  const x = parseIpv4Cidr(a);
  const y = parseIpv4Cidr(b);
  if (!x || !y) return false;
  const prefix = Math.min(x.prefix, y.prefix);
  const size = 2 ** (32 - prefix);
  return Math.floor(x.address / size) === Math.floor(y.address / size);
}
