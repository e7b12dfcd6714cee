/**
 * Offline bundles: `makeBundle` (what `kiln bundle` runs) and `verifyBundle` (what `kiln bundle
 * verify` and `kiln build --bundle` run). A bundle is made from a plan of the definition: the
 * artifacts do not depend on the target or size, so any defined one will do (the first by default).
 */
import { loadDefinition } from '../definition/load.js';
import { resolve } from '../definition/resolve.js';
import { SIZES, TARGETS } from '../definition/schema.js';
import { newRunId } from '../pipeline/run-id.js';
import { createBundle, type CreatedBundle } from './create.js';
import type { DownloadOptions } from './download.js';

export { verifyBundle, type VerifiedBundle } from './verify.js';
export { createBundle, type CreatedBundle } from './create.js';
export type { BundleArtifact, BundleManifest } from './manifest.js';

export interface MakeBundleOptions {
  definition: string;
  version: string;
  output: string;
  cacheDir: string;
  target?: string;
  size?: string;
  mirrors?: Partial<Record<'k3s' | 'helm' | 'charts', string>>;
  log?: (line: string) => void;
  signal?: AbortSignal;
  download?: Omit<DownloadOptions, 'signal' | 'log'>;
}

export async function makeBundle(options: MakeBundleOptions): Promise<CreatedBundle> {
  const loaded = await loadDefinition(options.definition);
  const { definition } = loaded;
  const target = options.target ?? TARGETS.find((t) => definition.targets[t]) ?? 'local';
  const size = options.size ?? SIZES.find((s) => definition.sizes[s]) ?? 'XS';
  const plan = resolve(loaded, target, size, options.version, { runId: newRunId(), mirrors: options.mirrors });
  return createBundle({ plan, output: options.output, cacheDir: options.cacheDir, log: options.log, signal: options.signal, download: options.download });
}
