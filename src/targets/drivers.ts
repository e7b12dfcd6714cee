/**
 * The one place that maps a target name to its driver. Drivers are imported on demand: each cloud
 * SDK takes seconds to load, and `kiln plan` or a local build should not pay for all three. The
 * cloud drivers of one run share one set of API rate limiters.
 */
import type { TargetName } from '../definition/schema.js';
import type { AwsDriverOptions } from './aws/driver.js';
import type { AzureDriverOptions } from './azure/driver.js';
import type { GcpDriverOptions } from './gcp/driver.js';
import type { LocalDriverOptions } from './local/driver.js';
import { RateLimits } from './rate-limits.js';
import type { TargetDriver } from './target.js';

export interface DriverOptions {
  local?: LocalDriverOptions;
  gcp?: GcpDriverOptions;
  azure?: AzureDriverOptions;
  aws?: AwsDriverOptions;
  /** The limiters every cloud driver's API calls go through (default: a new set with the documented rates). */
  rateLimits?: RateLimits;
}

export async function createDriver(target: TargetName, options: DriverOptions = {}): Promise<TargetDriver> {
  const rateLimits = options.rateLimits ?? new RateLimits();
  switch (target) {
    case 'local':
      return new (await import('./local/driver.js')).LocalDriver(options.local);
    case 'azure':
      return new (await import('./azure/driver.js')).AzureDriver({ rateLimits, ...options.azure });
    case 'gcp':
      return new (await import('./gcp/driver.js')).GcpDriver({ rateLimits, ...options.gcp });
    case 'aws':
      return new (await import('./aws/driver.js')).AwsDriver({ rateLimits, ...options.aws });
  }
}

/** One driver per target, created once, for the targets a run or a ledger needs. */
export async function driversFor(targets: Iterable<TargetName>, options: DriverOptions = {}): Promise<(target: TargetName) => TargetDriver> {
  const drivers = new Map<TargetName, TargetDriver>();
  const shared = { ...options, rateLimits: options.rateLimits ?? new RateLimits() };
  for (const target of new Set(targets)) drivers.set(target, await createDriver(target, shared));
  return (target) => {
    const driver = drivers.get(target);
    if (!driver) throw new Error(`no driver loaded for target ${target}`);
    return driver;
  };
}
