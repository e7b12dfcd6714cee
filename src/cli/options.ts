/** Options shared by several commands, and their parsing into plain values. */
import { InputError } from '../core/errors.js';

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
