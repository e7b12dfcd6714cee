/** Options shared by several commands, and their parsing into plain values. */
import { InputError } from '../core/errors.js';
import type { GuestForward } from '../targets/local/qemu-args.js';
import { API_CALL_KINDS, DEFAULT_API_RATES, RATE_LIMITED_TARGETS, type ApiCallKind, type ApiRateOverrides, type RateLimitedTarget } from '../targets/rate-limits.js';

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

export const apiRateOption = [
  '--api-rate <target[.kind]=n>',
  `cloud API requests per second per account and region, over the documented defaults (${RATE_LIMITED_TARGETS.map((t) => `${t} ${DEFAULT_API_RATES[t].read}/${DEFAULT_API_RATES[t].write}`).join(', ')} read/write), e.g. aws.write=10 or gcp=50; repeatable`,
  (value: string, previous: string[]) => [...previous, value],
  [] as string[],
] as const;

export function parseApiRates(values: string[]): ApiRateOverrides {
  const overrides: ApiRateOverrides = {};
  for (const value of values) {
    const match = /^([a-z]+)(?:\.([a-z]+))?=([0-9]*\.?[0-9]+)$/.exec(value.trim());
    const target = match?.[1] as RateLimitedTarget | undefined;
    const kind = match?.[2] as ApiCallKind | undefined;
    const rate = Number(match?.[3]);
    if (!match || !target || !RATE_LIMITED_TARGETS.includes(target) || (kind && !API_CALL_KINDS.includes(kind)) || !(rate > 0)) {
      throw new InputError({
        field: '--api-rate',
        message: `expected TARGET=n or TARGET.KIND=n with TARGET one of ${RATE_LIMITED_TARGETS.join(', ')}, KIND read or write and n > 0 requests per second, found ${JSON.stringify(value)}`,
      });
    }
    const rates = (overrides[target] ??= {});
    for (const k of kind ? [kind] : API_CALL_KINDS) rates[k] = rate;
  }
  return overrides;
}
