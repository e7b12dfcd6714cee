/** The one place that maps a target name to its driver. */
import type { TargetName } from '../definition/schema.js';
import { AwsDriver, type AwsDriverOptions } from './aws/driver.js';
import { AzureDriver, type AzureDriverOptions } from './azure/driver.js';
import { GcpDriver, type GcpDriverOptions } from './gcp/driver.js';
import { LocalDriver, type LocalDriverOptions } from './local/driver.js';
import type { TargetDriver } from './target.js';

export interface DriverOptions {
  local?: LocalDriverOptions;
  gcp?: GcpDriverOptions;
  azure?: AzureDriverOptions;
  aws?: AwsDriverOptions;
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
      return new AwsDriver(options.aws);
  }
}
