/**
 * The build matrix of a run: targets x sizes for one version, in a stable order (targets as given,
 * sizes XS..XL), and a deterministic shard of it for CI (`--shard i/n`: every n-th build from i).
 */
import { InputError } from '../core/errors.js';
import type { LoadedDefinition } from '../definition/load.js';
import type { Plan } from '../definition/plan.js';
import { parseSize, parseTarget, resolve, type ResolveOptions } from '../definition/resolve.js';
import { SIZES, TARGETS } from '../definition/schema.js';

export interface MatrixRequest {
  /** Comma-separated targets, or "all" for every target the definition has. */
  targets: string;
  /** Comma-separated sizes, or "all" for every size the definition has. */
  sizes: string;
  version: string;
  shard?: string;
}

export function buildMatrix(loaded: LoadedDefinition, request: MatrixRequest, options: ResolveOptions): Plan[] {
  const { definition } = loaded;
  const targets = request.targets.trim().toLowerCase() === 'all' ? TARGETS.filter((t) => definition.targets[t]) : unique(split(request.targets).map(parseTarget));
  const sizes = request.sizes.trim().toLowerCase() === 'all' ? SIZES.filter((s) => definition.sizes[s]) : unique(split(request.sizes).map(parseSize)).sort((a, b) => SIZES.indexOf(a) - SIZES.indexOf(b));
  if (targets.length === 0) throw new InputError({ field: '--target', message: 'expected at least one target' });
  if (sizes.length === 0) throw new InputError({ field: '--size', message: 'expected at least one size' });
  const plans = targets.flatMap((target) => sizes.map((size) => resolve(loaded, target, size, request.version, options)));
  return request.shard ? shardOf(plans, parseShard(request.shard)) : plans;
}

export interface Shard {
  index: number;
  count: number;
}

export function parseShard(value: string): Shard {
  const match = /^(\d+)\/(\d+)$/.exec(value.trim());
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (!match || count < 1 || index < 1 || index > count) {
    throw new InputError({ field: '--shard', message: `expected i/n with 1 <= i <= n, like 2/4, found ${JSON.stringify(value)}` });
  }
  return { index, count };
}

/** Builds i, i+n, i+2n... (1-based): shards stay balanced across targets and sizes. */
export function shardOf<T>(items: T[], shard: Shard): T[] {
  return items.filter((_, i) => i % shard.count === shard.index - 1);
}

function split(value: string): string[] {
  return value.split(',').map((v) => v.trim()).filter(Boolean);
}

function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}
