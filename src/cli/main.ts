#!/usr/bin/env node
/** The kiln command line: wires the commands, maps errors to messages and exit codes. */
import { Command, CommanderError } from 'commander';
import { EXIT_BUILD_FAILED, EXIT_INPUT, KilnError, formatInputIssue, InputError } from '../core/errors.js';
import { registerBase } from './base.js';
import { registerBuild } from './build.js';
import { registerBundle } from './bundle.js';
import { registerCheck } from './check.js';
import { registerCleanup } from './cleanup.js';
import { CommandExit } from './exit.js';
import { terminalOutput } from './output.js';
import { registerManifest } from './manifest.js';
import { registerPlan } from './plan.js';
import { registerRelease } from './release.js';
import { registerValidate } from './validate.js';

export async function main(argv: string[]): Promise<number> {
  const out = terminalOutput();
  const program = new Command('kiln')
    .description('Bake single-node K3s appliance images for AWS, Azure, GCE and QEMU')
    .option('--debug', 'print stack traces on errors')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerPlan(program, out);
  registerCheck(program, out);
  registerBuild(program, out);
  registerBundle(program, out);
  registerCleanup(program, out);
  registerBase(program, out);
  registerManifest(program, out);
  registerRelease(program, out);
  registerValidate(program, out);

  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    return reportError(err, program.opts<{ debug?: boolean }>().debug ?? false, out.error);
  }
}

function reportError(err: unknown, debug: boolean, print: (text: string) => void): number {
  if (err instanceof CommandExit) return err.exitCode;
  if (err instanceof CommanderError) {
    // Commander already printed its message; help and version are successes.
    return err.exitCode === 0 ? 0 : EXIT_INPUT;
  }
  if (err instanceof InputError) {
    print(`error: invalid input (${err.issues.length} problem${err.issues.length === 1 ? '' : 's'}):`);
    for (const issue of err.issues) print(`  ${formatInputIssue(issue)}`);
  } else if (err instanceof KilnError) {
    const context = Object.entries(err.context).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${String(v)}`);
    print(`error: ${err.message}${context.length > 0 ? ` [${context.join(' ')}]` : ''}`);
  } else {
    print(`error: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (debug && err instanceof Error && err.stack) print(err.stack);
  return err instanceof KilnError ? err.exitCode : EXIT_BUILD_FAILED;
}

process.exitCode = await main(process.argv);
