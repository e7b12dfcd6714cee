/**
 * `kiln build --on-error ask` as the CLI runs it (src/cli/build-run.ts: progress, signals, the
 * terminal question, summary, exit code), on a scripted driver (an in-memory cloud, SSH to the
 * test's sshd) and a plan with nothing to provision: the test drives it through a pseudo-terminal.
 *
 * Config: KILN_ASK_CHILD (JSON, see AskChildConfig) and KILN_STATE_DIR. `failStep` fails while
 * `failFile` exists (the test removes it to fix the failure). At the end it prints
 * `live: <json>` (what the scripted cloud still holds) and exits with the CLI's exit code.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { runAndReport } from '../../../src/cli/build-run.js';
import { terminalOutput } from '../../../src/cli/output.js';
import type { PipelineStepName } from '../../../src/definition/plan.js';
import { loadDefinition } from '../../../src/definition/load.js';
import { resolve } from '../../../src/definition/resolve.js';
import { runPaths, stateDir } from '../../../src/pipeline/state-dir.js';
import { ScriptedDriver } from '../../support/scripted-driver.js';

export interface AskChildConfig {
  runId: string;
  ssh: { host: string; port: number; username: string; hostKeys: string[] };
  keyFile: string;
  failStep: PipelineStepName;
  failFile: string;
  manifest: string;
}

if (!process.stdin.isTTY) throw new Error('ask-child: stdin is not a terminal');
const config = JSON.parse(process.env.KILN_ASK_CHILD ?? '{}') as AskChildConfig;
const privateKey = readFileSync(config.keyFile, 'utf8');
const driver = new ScriptedDriver({ ...config.ssh, privateKey }, { [config.failStep]: () => (existsSync(config.failFile) ? 'fail' : undefined) });
// Nothing may run on this host: no provisioning steps.
const plan = { ...resolve(await loadDefinition('images/gitea.yaml'), 'local', 'S', '1.22.0', { runId: config.runId }), provision: [] };
// Where a real driver keeps the VM's key, for the ssh command that abort prints.
const keyPath = runPaths(plan.runId, stateDir()).build(plan.buildId).sshKey;
mkdirSync(dirname(keyPath), { recursive: true, mode: 0o700 });
writeFileSync(keyPath, privateKey, { mode: 0o600 });

const code = await runAndReport({ plans: [plan], driverFor: () => driver, onError: 'ask', concurrency: 1, manifest: config.manifest, verbose: true }, terminalOutput());
process.stdout.write(`live: ${JSON.stringify(Object.fromEntries(driver.live))}\n`);
process.exit(code);
