import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { EXIT_BUILD_FAILED, InputError } from '../core/errors.js';
import { parseDuration } from '../core/parse-duration.js';
import { parseTarget } from '../definition/resolve.js';
import { TARGETS, type TargetName } from '../definition/schema.js';
import { Ledger } from '../pipeline/ledger.js';
import { runPaths, stateDir } from '../pipeline/state-dir.js';
import { sweep } from '../pipeline/sweep.js';
import { describeEntry, undo } from '../pipeline/undo.js';
import { driversFor } from '../targets/drivers.js';
import { CommandExit } from './exit.js';
import type { Output } from './output.js';

interface CleanupFlags {
  run?: string;
  sweep?: boolean;
  olderThan: string;
  target?: string;
  yes?: boolean;
  dryRun?: boolean;
}

export function registerCleanup(program: Command, out: Output): void {
  program
    .command('cleanup')
    .description('delete what runs left behind: one run by its ledger (--run), or every abandoned run (--sweep)')
    .option('--run <id>', 'delete what this run\'s ledger still lists (after kill -9, a lost CI runner or --on-error abort)')
    .option('--dry-run', 'with --run: list what would be deleted')
    .option('--sweep', 'find resources of abandoned runs, in ledgers here and by kiln tags in the clouds (dry run unless --yes)')
    .option('--older-than <age>', 'with --sweep: only runs older than this (30m, 6h, 2d)', '6h')
    .option('--target <targets>', `with --sweep: comma-separated targets to search (default: all: ${TARGETS.join(', ')})`)
    .option('--yes', 'with --sweep: delete, instead of listing')
    .action(async (flags: CleanupFlags) => {
      if (Boolean(flags.run) === Boolean(flags.sweep)) throw new InputError({ field: '--run/--sweep', message: 'expected exactly one of --run <id> or --sweep' });
      if (flags.run) await cleanupRun(flags.run, flags.dryRun ?? false, out);
      else await sweepRuns(flags, out);
    });
}

async function cleanupRun(runId: string, dryRun: boolean, out: Output): Promise<void> {
  const paths = runPaths(runId, stateDir());
  if (!existsSync(paths.ledger)) throw new InputError({ field: '--run', message: `no ledger for run ${runId} in ${stateDir()}/runs (wrong --run, or KILN_STATE_DIR?)` });
  const ledger = await Ledger.open(paths.ledger, runId);
  const entries = ledger.entries();
  if (entries.length === 0) {
    out.line(`run ${runId}: nothing left to delete`);
    return;
  }
  if (dryRun) {
    for (const entry of entries.sort((a, b) => b.seq - a.seq)) out.line(`would delete ${describeEntry(entry)}`);
    return;
  }
  const driverFor = await driversFor(entries.map((e) => e.target));
  const left = await undo(ledger, (entry) => driverFor(entry.target), { log: out.line });
  if (left.length > 0) {
    out.error(`${left.length} resource(s) could not be deleted; run kiln cleanup --run ${runId} again`);
    throw new CommandExit(EXIT_BUILD_FAILED);
  }
  out.line(`run ${runId}: deleted ${entries.length} resource(s)`);
}

async function sweepRuns(flags: CleanupFlags, out: Output): Promise<void> {
  const targets: TargetName[] = flags.target ? flags.target.split(',').map((t) => parseTarget(t.trim())) : [...TARGETS];
  const report = await sweep({
    stateDir: stateDir(),
    olderThanMs: parseDuration(flags.olderThan, '--older-than'),
    targets,
    driverFor: await driversFor(targets),
    act: flags.yes ?? false,
    log: out.line,
  });
  for (const line of report.skipped) out.line(`not searched: ${line}`);
  if (report.liveRuns.length > 0) out.line(`left alone (live or younger than ${flags.olderThan}): ${report.liveRuns.join(', ')}`);
  for (const line of report.wouldDelete) out.line(`would delete ${line}`);
  for (const line of report.deleted) out.line(`deleted ${line}`);
  if (!flags.yes && report.wouldDelete.length > 0) out.line(`dry run: add --yes to delete these ${report.wouldDelete.length} resource(s)`);
  if (report.wouldDelete.length + report.deleted.length === 0) out.line('nothing to sweep');
  if (report.failed.length > 0) {
    for (const line of report.failed) out.error(`could not delete ${line}`);
    throw new CommandExit(EXIT_BUILD_FAILED);
  }
}
