import type { Command } from 'commander';
import { dirname } from 'node:path';
import { verifyBundle } from '../bundle/index.js';
import { EXIT_BUILD_FAILED, InputError } from '../core/errors.js';
import { loadDefinition } from '../definition/load.js';
import type { Plan } from '../definition/plan.js';
import { SIZES, TARGETS } from '../definition/schema.js';
import { buildMatrix } from '../pipeline/matrix.js';
import { newRunId } from '../pipeline/run-id.js';
import { runBuilds } from '../pipeline/run.js';
import { stateDir } from '../pipeline/state-dir.js';
import { driversFor } from '../targets/drivers.js';
import { collectMirrors, localForwardOption, mirrorOption, parseLocalForward, parseLocalNetwork } from './options.js';
import { CommandExit } from './exit.js';
import type { Output } from './output.js';
import { createProgress } from './progress.js';
import { onInterrupt } from './signals.js';
import { printSummary } from './summary.js';

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
    .option('--on-error <mode>', 'cleanup (delete everything) or abort (keep it for debugging)', 'cleanup')
    .option('--concurrency <n>', 'builds running at once', '4')
    .option('--fail-fast', 'stop the other builds when one fails')
    .option('--run-id <id>', 'run id to use (default: a new one); CI shards of one release share it')
    .option('--resume <run id>', 'continue a run from the first step each build has not completed')
    .option('-o, --output-dir <dir>', 'where the local target writes images', 'kiln-out')
    .option('--local-network <mode>', 'local target: open (the VM reaches the network through NAT) or restricted (only --local-forward)', 'open')
    .option(...localForwardOption)
    .option('--validate', 'boot an instance from each image and run the checks before publishing; a failing image is never published')
    .option('--manifest <path>', 'where to write the run manifest', 'kiln-manifest.json')
    .option('-v, --verbose', 'stream every build\'s output (always in its log file)')
    .action(async (path: string, flags: BuildFlags) => {
      const code = await build(path, flags, out);
      if (code !== 0) throw new CommandExit(code);
    });
}

async function build(path: string, flags: BuildFlags, out: Output): Promise<number> {
  if (flags.onError !== 'cleanup' && flags.onError !== 'abort') {
    throw new InputError({ field: '--on-error', message: `expected cleanup or abort, found ${JSON.stringify(flags.onError)}` });
  }
  const concurrency = Number(flags.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new InputError({ field: '--concurrency', message: `expected a whole number >= 1, found ${JSON.stringify(flags.concurrency)}` });
  const loaded = await loadDefinition(path);
  if (flags.resume && flags.runId && flags.resume !== flags.runId) {
    throw new InputError({ field: '--run-id', message: `conflicts with --resume ${flags.resume}: give one of them` });
  }
  const runId = flags.resume ?? flags.runId ?? newRunId();
  if (flags.bundle) out.line(`verifying ${flags.bundle}`);
  const bundle = flags.bundle ? await verifyBundle(flags.bundle) : undefined;
  const plans = buildMatrix(loaded, { targets: flags.target, sizes: flags.size, version: flags.version, shard: flags.shard }, { runId, mirrors: collectMirrors(flags.mirror), bundle });
  if (plans.length === 0) {
    out.line(`shard ${flags.shard ?? ''} of this matrix is empty: nothing to build`);
    return 0;
  }

  const local = { outputDir: flags.outputDir, definitionDir: dirname(path), network: parseLocalNetwork(flags.localNetwork), guestForwards: flags.localForward.map(parseLocalForward) };
  const driverOf = await driversFor(plans.map((p) => p.target), { local });
  const driverFor = (plan: Plan) => driverOf(plan.target);

  out.line(`run ${runId}: ${plans.length} build(s) of ${loaded.definition.name} ${flags.version}; state in ${stateDir()}/runs/${runId}`);
  const progress = createProgress(plans.map((p) => p.buildId), out, flags.verbose ?? false);
  const interrupt = onInterrupt({
    first: () => out.error('interrupted: undoing what the builds created (Ctrl-C again to stop waiting)'),
    second: () => out.error(`stopped waiting; anything left is in the ledger: run  kiln cleanup --run ${runId}`),
  });
  try {
    const run = await runBuilds({
      plans,
      driverFor,
      stateDir: stateDir(),
      onError: flags.onError,
      signal: interrupt.signal,
      concurrency,
      failFast: flags.failFast,
      resume: flags.resume !== undefined,
      validate: flags.validate,
      manifestPath: flags.manifest,
      onProgress: (e) => progress.event(e),
      onBuildDone: (r) => progress.buildDone(r),
    });
    await progress.finish();
    printSummary(run.results, flags.manifest, out);
    return run.results.every((r) => r.status === 'succeeded') && run.results.length === plans.length ? 0 : EXIT_BUILD_FAILED;
  } finally {
    interrupt.dispose();
  }
}

