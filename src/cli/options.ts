/** Options shared by several commands, and their parsing into plain values. */
import { InputError } from '../core/errors.js';
import type { GuestForward } from '../targets/local/qemu-args.js';

const MIRROR_KINDS = ['k3s', 'helm', 'charts'] as const;

export const mirrorOption = [
  '--mirror <kind=url>',
  `artifact mirror replacing a source (${MIRROR_KINDS.join(', ')}); repeatable`,
  (value: string, previous: string[]) => [...previous, value],
  [] as string[],
] as const;

export function collectMirrors(values: string[]): Partial<Record<(typeof MIRROR_KINDS)[number], string>> {
  const mirrors: Partial<Record<(typeof MIRROR_KINDS)[number], string>> = {};
  for (const value of values) {
    const eq = value.indexOf('=');
    const kind = value.slice(0, eq);
    if (eq < 0 || !(MIRROR_KINDS as readonly string[]).includes(kind)) {
      throw new InputError({ field: '--mirror', message: `expected kind=url with kind one of ${MIRROR_KINDS.join(', ')}, found ${JSON.stringify(value)}` });
    }
    mirrors[kind as (typeof MIRROR_KINDS)[number]] = value.slice(eq + 1);
  }
  return mirrors;
}

export const localForwardOption = [
  '--local-forward <guest=host>',
  'local target: relay guest ADDR:PORT (in 10.0.2.0/24) to a host loopback ADDR:PORT, e.g. 10.0.2.100:8080=127.0.0.1:8080; repeatable',
  (value: string, previous: string[]) => [...previous, value],
  [] as string[],
] as const;

export function parseLocalForward(value: string): GuestForward {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})=(127(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(value);
  if (!match) {
    throw new InputError({ field: '--local-forward', message: `expected GUEST_ADDR:PORT=127.x.x.x:PORT, like 10.0.2.100:8080=127.0.0.1:8080, found ${JSON.stringify(value)}` });
  }
  return { guestAddress: match[1] ?? '', guestPort: Number(match[2]), hostAddress: match[3] ?? '', hostPort: Number(match[4]) };
}

export function parseLocalNetwork(value: string): 'open' | 'restricted' {
  if (value === 'open' || value === 'restricted') return value;
  throw new InputError({ field: '--local-network', message: `expected open or restricted, found ${JSON.stringify(value)}` });
}
