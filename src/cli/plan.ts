import type { Command } from 'commander';
import { verifyBundle } from '../bundle/index.js';
import { loadDefinition } from '../definition/load.js';
import { resolve } from '../definition/resolve.js';
import { newRunId } from '../pipeline/run-id.js';
import { collectMirrors, mirrorOption } from './options.js';
import type { Output } from './output.js';
import { renderPlan } from './render-plan.js';

export function registerPlan(program: Command, out: Output): void {
  program
    .command('plan')
    .description('resolve a definition for one target, size and version, and print the build plan (touches nothing)')
    .argument('<definition>', 'image definition (YAML), e.g. images/sourcegraph.yaml')
    .requiredOption('-t, --target <target>', 'aws, azure, gcp or local')
    .requiredOption('-s, --size <size>', 'XS, S, M, L or XL')
    .requiredOption('-V, --version <version>', 'product version, e.g. 5.2.0')
    .option('--run-id <id>', 'run id to plan with (default: a new one)')
    .option(...mirrorOption)
    .option('--no-publish', 'plan a build that is not published (see kiln build --no-publish)')
    .option('--bundle <file>', 'plan an offline build from this bundle (verified first)')
    .option('--json', 'print the plan as JSON')
    .action(async (path: string, opts: { target: string; size: string; version: string; runId?: string; mirror: string[]; publish: boolean; bundle?: string; json?: boolean }) => {
      const loaded = await loadDefinition(path);
      const bundle = opts.bundle ? await verifyBundle(opts.bundle) : undefined;
      const plan = resolve(loaded, opts.target, opts.size, opts.version, { runId: opts.runId ?? newRunId(), mirrors: collectMirrors(opts.mirror), publish: opts.publish, bundle });
      if (opts.json) out.line(JSON.stringify(plan, null, 2));
      else renderPlan(plan, out);
    });
}
