/** The one place that maps a target name to its driver. */
import { KilnError } from '../core/errors.js';
import type { TargetName } from '../definition/schema.js';
import { AzureDriver, type AzureDriverOptions } from './azure/driver.js';
import { GcpDriver, type GcpDriverOptions } from './gcp/driver.js';
import { LocalDriver, type LocalDriverOptions } from './local/driver.js';
import type { TargetDriver } from './target.js';

export interface DriverOptions {
  local?: LocalDriverOptions;
  gcp?: GcpDriverOptions;
  azure?: AzureDriverOptions;
}

export function createDriver(target: TargetName, options: DriverOptions = {}): TargetDriver {
  switch (target) {
    case 'local':
      return new LocalDriver(options.local);
    case 'azure':
      return new AzureDriver(options.azure);
    case 'gcp':
      return new GcpDriver(options.gcp);
    case 'aws':
      throw new KilnError('INPUT', `the ${target} target is not available in this version of kiln yet`, { target });
  }
}
