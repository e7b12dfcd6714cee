/**
 * The GCE fake's API errors, operation errors, injected faults and interceptors, as the real
 * @google-cloud/compute clients surface them. (Suites share one file because loading the SDK costs
 * seconds per test file.)
 */
import { errorsSuite } from './suites/errors.js';
import { faultsSuite } from './suites/faults.js';

errorsSuite();
faultsSuite();
