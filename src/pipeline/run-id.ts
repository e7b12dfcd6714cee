import { randomBytes } from 'node:crypto';

/**
 * A new run id: `r`, the time in base 36 (sortable, 8 characters until 2059) and 4 random base-36
 * characters. Lowercase and short, so it fits every cloud's resource-name rules.
 */
export function newRunId(now = Date.now()): string {
  const random = [...randomBytes(4)].map((b) => (b % 36).toString(36)).join('');
  return `r${now.toString(36)}${random}`;
}
