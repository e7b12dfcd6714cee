/**
 * A kiln process for kept-vm.test.ts, so that the test can see what outlives it:
 *
 *   node --import tsx kept-vm-child.ts build '<BuildConfig JSON>'
 *     `kiln build` on the local target as the CLI runs it (runAndReport: its summary on stdout, its
 *     exit code), with a stand-in guest; state under $KILN_STATE_DIR.
 *   node --import tsx kept-vm-child.ts launch '<LaunchVmOptions JSON>' keep|exit
 *     starts one VM and prints `pid <n>`; keep: keeps it and lets the process end by itself; exit:
 *     calls process.exit with the VM running, as kiln does on a second Ctrl-C.
 */
import { loadDefinition } from '../../../src/definition/load.js';
import { resolve } from '../../../src/definition/resolve.js';
import { runAndReport } from '../../../src/cli/build-run.js';
import { terminalOutput } from '../../../src/cli/output.js';
import type { OnError } from '../../../src/pipeline/build.js';
import { launchVm, type LaunchVmOptions } from '../../../src/targets/local/qemu.js';
import { standInDriver, standInPlan, type StandInGuest } from '../../support/local-stand-in.js';

export interface BuildConfig {
  runId: string;
  guest: StandInGuest;
  onError: OnError;
  resume: boolean;
  manifest: string;
}

const [mode, json = '{}', then] = process.argv.slice(2);

if (mode === 'build') {
  const config = JSON.parse(json) as BuildConfig;
  const plan = standInPlan(resolve(await loadDefinition('images/sourcegraph.yaml'), 'local', 'xs', '5.2.0', { runId: config.runId }), config.guest);
  process.exitCode = await runAndReport(
    { plans: [plan], driverFor: () => standInDriver(config.guest), onError: config.onError, concurrency: 1, resume: config.resume, manifest: config.manifest, verbose: false },
    terminalOutput(),
  );
} else if (mode === 'launch') {
  const vm = await launchVm(JSON.parse(json) as LaunchVmOptions);
  process.stdout.write(`pid ${vm.pid}\n`);
  if (then === 'keep') vm.keepAfterExit();
  else process.exit(0);
} else {
  throw new Error(`unknown mode ${mode}`);
}
