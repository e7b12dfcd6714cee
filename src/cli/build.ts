import type { Command } from 'commander';
import { dirname } from 'node:path';
import { verifyBundle } from '../bundle/index.js';
import { InputError } from '../core/errors.js';
import { loadDefinition } from '../definition/load.js';
import type { Plan } from '../definition/plan.js';
import { SIZES, TARGETS } from '../definition/schema.js';
import type { OnError } from '../pipeline/build.js';
import { buildMatrix } from '../pipeline/matrix.js';
import { newRunId } from '../pipeline/run-id.js';
import { stateDir } from '../pipeline/state-dir.js';
import { driversFor } from '../targets/drivers.js';
import { RateLimits } from '../targets/rate-limits.js';
import { runAndReport } from './build-run.js';
import { apiRateOption, collectMirrors, localForwardOption, mirrorOption, parseApiRates, parseLocalForward, parseLocalNetwork } from './options.js';
import { CommandExit } from './exit.js';
import type { Output } from './output.js';

interface BuildFlags {
  target: string;
  size: string;
  version: string;
  mirror: string[];
  onError: string;
  concurrency: string;
  failFast?: boolean;
  resume?: string;
  outputDir: string;
  manifest: string;
  verbose?: boolean;
  shard?: string;
  runId?: string;
  localNetwork: string;
  localForward: string[];
  validate?: boolean;
  apiRate: string[];
  publish: boolean;
  bundle?: string;
}

export function registerBuild(program: Command, out: Output): void {
  program
    .command('build')
    .description('build images: launch, provision, capture, publish, clean up')
    .argument('<definition>', 'image definition (YAML)')
    .requiredOption('-t, --target <targets>', `comma-separated targets (${TARGETS.join(', ')}) or "all"`)
    .requiredOption('-s, --size <sizes>', `comma-separated sizes (${SIZES.join(', ')}) or "all"`)
    .option('--shard <i/n>', 'build only every n-th build of the matrix, starting with the i-th (for CI)')
    .requiredOption('-V, --version <version>', 'product version, e.g. 5.2.0')
    .option(...mirrorOption)
    .option('--bundle <file>', 'offline bundle (kiln bundle) to take every artifact from: no provisioning step downloads anything')
    .option('--on-error <mode>', 'cleanup (delete everything), abort (keep it for debugging) or ask (on a terminal: cleanup, abort or retry the step)', 'cleanup')
    .option('--concurrency <n>', 'builds running at once', '4')
    .option('--fail-fast', 'stop the other builds when one fails')
    .option('--no-publish', 'build and capture only: no region copies, sharing, family or gallery version (nightly test builds)')
    .option('--run-id <id>', 'run id to use (default: a new one); CI shards of one release share it')
    .option('--resume <run id>', 'continue a run from the first step each build has not completed')
    .option('-o, --output-dir <dir>', 'where the local target writes images', 'kiln-out')
    .option('--local-network <mode>', 'local target: open (the VM reaches the network through NAT) or restricted (only --local-forward)', 'open')
    .option(...localForwardOption)
    .option(...apiRateOption)
    .option('--validate', 'boot an instance from each image and run the checks before publishing; a failing image is never published')
    .option('--manifest <path>', 'where to write the run manifest', 'kiln-manifest.json')
    .option('-v, --verbose', 'stream every build\'s output (always in its log file)')
    .action(async (path: string, flags: BuildFlags) => {
      const code = await build(path, flags, out);
      if (code !== 0) throw new CommandExit(code);
    });
}

async function build(path: string, flags: BuildFlags, out: Output): Promise<number> {
  const onError = parseOnError(flags.onError);
  const concurrency = Number(flags.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new InputError({ field: '--concurrency', message: `expected a whole number >= 1, found ${JSON.stringify(flags.concurrency)}` });
  const rateLimits = new RateLimits(parseApiRates(flags.apiRate));
  const loaded = await loadDefinition(path);
  if (flags.resume && flags.runId && flags.resume !== flags.runId) {
    throw new InputError({ field: '--run-id', message: `conflicts with --resume ${flags.resume}: give one of them` });
  }
  const runId = flags.resume ?? flags.runId ?? newRunId();
  if (flags.bundle) out.line(`verifying ${flags.bundle}`);
  const bundle = flags.bundle ? await verifyBundle(flags.bundle) : undefined;
  const plans = buildMatrix(loaded, { targets: flags.target, sizes: flags.size, version: flags.version, shard: flags.shard }, { runId, mirrors: collectMirrors(flags.mirror), publish: flags.publish, bundle });
  if (plans.length === 0) {
    out.line(`shard ${flags.shard ?? ''} of this matrix is empty: nothing to build`);
    return 0;
  }

  const local = { outputDir: flags.outputDir, definitionDir: dirname(path), network: parseLocalNetwork(flags.localNetwork), guestForwards: flags.localForward.map(parseLocalForward) };
  const driverOf = await driversFor(plans.map((p) => p.target), { local, rateLimits });
  const driverFor = (plan: Plan) => driverOf(plan.target);

  out.line(`run ${runId}: ${plans.length} build(s) of ${loaded.definition.name} ${flags.version}${flags.publish ? '' : ' (not published: private images in the build region only)'}; state in ${stateDir()}/runs/${runId}`);
  return runAndReport(
    { plans, driverFor, onError, concurrency, failFast: flags.failFast, resume: flags.resume !== undefined, validate: flags.validate, manifest: flags.manifest, verbose: flags.verbose ?? false },
    out,
  );
}

function parseOnError(value: string): OnError {
  if (value !== 'cleanup' && value !== 'abort' && value !== 'ask') {
    throw new InputError({ field: '--on-error', message: `expected cleanup, abort or ask, found ${JSON.stringify(value)}` });
  }
  if (value === 'ask' && !process.stdin.isTTY) {
    throw new InputError({ field: '--on-error', message: 'ask needs a terminal to ask on, and stdin is not one (CI, a pipe, a service): use cleanup or abort' });
  }
  return value;
}
