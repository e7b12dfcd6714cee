/**
 * The GCE fake driven by the real @google-cloud/compute clients: a whole image build, and the
 * inspection API cleanup tests rely on. (Suites share one file because loading the SDK costs
 * seconds per test file.)
 */
import { inspectionSuite } from './suites/inspection.js';
import { lifecycleSuite } from './suites/lifecycle.js';

lifecycleSuite();
inspectionSuite();
