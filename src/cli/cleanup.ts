import type { Command } from 'commander';
import { EXIT_BUILD_FAILED, InputError } from '../core/errors.js';
import { Ledger } from '../pipeline/ledger.js';
import { runPaths, stateDir } from '../pipeline/state-dir.js';
import { describeEntry, undo } from '../pipeline/undo.js';
import { createDriver } from '../targets/drivers.js';
import { existsSync } from 'node:fs';
import { CommandExit } from './exit.js';
import type { Output } from './output.js';

export function registerCleanup(program: Command, out: Output): void {
  program
    .command('cleanup')
    .description('delete what a run left behind (after kill -9, a lost CI runner or --on-error abort)')
    .requiredOption('--run <id>', 'the run whose ledger lists the resources')
    .option('--dry-run', 'list what would be deleted')
    .action(async (flags: { run: string; dryRun?: boolean }) => {
      const paths = runPaths(flags.run, stateDir());
      if (!existsSync(paths.ledger)) throw new InputError({ field: '--run', message: `no ledger for run ${flags.run} in ${stateDir()}/runs (wrong --run, or KILN_STATE_DIR?)` });
      const ledger = await Ledger.open(paths.ledger, flags.run);
      const entries = ledger.entries();
      if (entries.length === 0) {
        out.line(`run ${flags.run}: nothing left to delete`);
        return;
      }
      if (flags.dryRun) {
        for (const entry of entries.sort((a, b) => b.seq - a.seq)) out.line(`would delete ${describeEntry(entry)}`);
        return;
      }
      const left = await undo(ledger, (entry) => createDriver(entry.target), { log: out.line });
      if (left.length > 0) {
        out.error(`${left.length} resource(s) could not be deleted; run kiln cleanup --run ${flags.run} again`);
        throw new CommandExit(EXIT_BUILD_FAILED);
      }
      out.line(`run ${flags.run}: deleted ${entries.length} resource(s)`);
    });
}
