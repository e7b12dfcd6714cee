import { InputError } from './errors.js';

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `30m`, `6h`, `2d` -> milliseconds; anything else is an input error naming the flag. */
export function parseDuration(value: string, field: string): number {
  const match = /^(\d+)([smhd])$/.exec(value.trim());
  if (!match) throw new InputError({ field, message: `expected a duration like 30m, 6h or 2d, found ${JSON.stringify(value)}` });
  return Number(match[1]) * (UNITS[match[2] ?? 'h'] ?? 0);
}
