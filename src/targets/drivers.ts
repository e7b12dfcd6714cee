/** The one place that maps a target name to its driver. */
import { KilnError } from '../core/errors.js';
import type { TargetName } from '../definition/schema.js';
import { LocalDriver, type LocalDriverOptions } from './local/driver.js';
import type { TargetDriver } from './target.js';

export interface DriverOptions {
  local?: LocalDriverOptions;
}

export function createDriver(target: TargetName, options: DriverOptions = {}): TargetDriver {
  switch (target) {
    case 'local':
      return new LocalDriver(options.local);
    case 'aws':
    case 'azure':
    case 'gcp':
      throw new KilnError('INPUT', `the ${target} target is not available in this version of kiln yet`, { target });
  }
}
