import type { Command } from 'commander';
import { dirname } from 'node:path';
import { EXIT_BUILD_FAILED } from '../core/errors.js';
import { TARGETS } from '../definition/schema.js';
import { stateDir } from '../pipeline/state-dir.js';
import { renderCheckTable } from '../validate/table.js';
import { validateSubjects } from '../validate/standalone.js';
import { CommandExit } from './exit.js';
import { localForwardOption, parseLocalForward, parseLocalNetwork } from './options.js';
import type { Output } from './output.js';
import { onInterrupt } from './signals.js';

interface ValidateFlags {
  target: string;
  size?: string;
  definition?: string;
  version?: string;
  dataDisk?: string;
  json?: boolean;
  verbose?: boolean;
  localNetwork: string;
  localForward: string[];
}

export function registerValidate(program: Command, out: Output): void {
  program
    .command('validate')
    .description('boot an instance from built images, wait for the boot unit, run the checks, delete the instance')
    .argument('<manifest|image>', 'a kiln-manifest.json (its succeeded builds), or an image id (local: the root image file)')
    .requiredOption('-t, --target <target>', TARGETS.join(', '))
    .option('-s, --size <size>', 'only this size of the manifest; required with an image id')
    .option('--definition <file>', 'the image definition (default: the manifest\'s); required with an image id')
    .option('-V, --version <version>', 'product version the image carries; required with an image id')
    .option('--data-disk <disk>', 'attach this existing data disk instead of the image\'s own, kept and shut down cleanly (local: a disk file; aws: an EBS volume id; gcp: a persistent disk name or path; azure: a managed disk ARM id)')
    .option('--json', 'print the results as JSON')
    .option('--local-network <mode>', 'local target: open or restricted (the instance reaches only --local-forward)', 'restricted')
    .option(...localForwardOption)
    .option('-v, --verbose', 'print the instance\'s console and every log line')
    .action(async (subject: string, flags: ValidateFlags) => {
      const code = await validate(subject, flags, out);
      if (code !== 0) throw new CommandExit(code);
    });
}

async function validate(subject: string, flags: ValidateFlags, out: Output): Promise<number> {
  const local = { definitionDir: flags.definition ? dirname(flags.definition) : undefined, network: parseLocalNetwork(flags.localNetwork), guestForwards: flags.localForward.map(parseLocalForward) };
  const interrupt = onInterrupt({
    first: () => out.error('interrupted: deleting the validation instance (Ctrl-C again to stop waiting)'),
    second: () => out.error('stopped waiting; anything left is in the ledger: see kiln cleanup --sweep'),
  });
  try {
    const { runId, validated } = await validateSubjects({
      subject,
      target: flags.target,
      size: flags.size,
      definition: flags.definition,
      version: flags.version,
      dataDisk: flags.dataDisk,
      stateDir: stateDir(),
      drivers: { local },
      signal: interrupt.signal,
      onLine: (line) => {
        if (flags.verbose || (!flags.json && !line.startsWith('console|') && !line.startsWith('ssh:'))) out.line(line);
      },
    });
    if (flags.json) {
      out.line(JSON.stringify({ runId, results: validated.map((v) => ({ buildId: v.plan.buildId, target: v.plan.target, size: v.plan.size, version: v.plan.version, passed: v.report.passed, checks: v.report.results })) }, null, 2));
    } else {
      for (const v of validated) {
        out.line();
        out.line(out.bold(`${v.plan.target} ${v.plan.size} ${v.plan.version}: ${v.report.passed ? 'passed' : 'FAILED'}`));
        out.line(renderCheckTable(v.report.results));
      }
    }
    return validated.every((v) => v.report.passed && v.report.leftovers.length === 0) ? 0 : EXIT_BUILD_FAILED;
  } finally {
    interrupt.dispose();
  }
}
