/**
 * The one place that maps a target name to its driver. Drivers are imported on demand: each cloud
 * SDK takes seconds to load, and `kiln plan` or a local build should not pay for all three.
 */
import type { TargetName } from '../definition/schema.js';
import type { AwsDriverOptions } from './aws/driver.js';
import type { AzureDriverOptions } from './azure/driver.js';
import type { GcpDriverOptions } from './gcp/driver.js';
import type { LocalDriverOptions } from './local/driver.js';
import type { TargetDriver } from './target.js';

export interface DriverOptions {
  local?: LocalDriverOptions;
  gcp?: GcpDriverOptions;
  azure?: AzureDriverOptions;
  aws?: AwsDriverOptions;
}

export async function createDriver(target: TargetName, options: DriverOptions = {}): Promise<TargetDriver> {
  switch (target) {
    case 'local':
      return new (await import('./local/driver.js')).LocalDriver(options.local);
    case 'azure':
      return new (await import('./azure/driver.js')).AzureDriver(options.azure);
    case 'gcp':
      return new (await import('./gcp/driver.js')).GcpDriver(options.gcp);
    case 'aws':
      return new (await import('./aws/driver.js')).AwsDriver(options.aws);
  }
}

/** One driver per target, created once, for the targets a run or a ledger needs. */
export async function driversFor(targets: Iterable<TargetName>, options: DriverOptions = {}): Promise<(target: TargetName) => TargetDriver> {
  const drivers = new Map<TargetName, TargetDriver>();
  for (const target of new Set(targets)) drivers.set(target, await createDriver(target, options));
  return (target) => {
    const driver = drivers.get(target);
    if (!driver) throw new Error(`no driver loaded for target ${target}`);
    return driver;
  };
}
