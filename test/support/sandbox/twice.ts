/**
 * The idempotence pass of the provisioning tests: every step of a plan run twice in one sandbox,
 * each run followed (in the same sandbox session) by a manifest of the provisioned paths, and a
 * clone of the sandbox taken just before `generalize`. Throws on the first run that fails.
 */
import path from 'node:path';
import type { ProvisionStep } from '../../../src/definition/plan.js';
import { manifestScript, type RunOptions, type Sandbox } from './sandbox.js';

export interface StepsRunTwice {
  /** Output of each step's first and second run, by step id, in plan order. */
  firstRuns: Map<string, string>;
  secondRuns: Map<string, string>;
  /** The manifest after each step's first and second run. */
  manifests: Map<string, [string, string]>;
  beforeGeneralize: Sandbox;
}

export async function runEveryStepTwice(
  sandbox: Sandbox,
  steps: ProvisionStep[],
  options: { workDir: string; paths: string[]; runOptions: (step: ProvisionStep) => RunOptions },
): Promise<StepsRunTwice> {
  const out: Omit<StepsRunTwice, 'beforeGeneralize'> & { beforeGeneralize?: Sandbox } = { firstRuns: new Map(), secondRuns: new Map(), manifests: new Map() };
  const after = manifestScript(options.paths);
  for (const step of steps) {
    if (step.id === 'generalize') out.beforeGeneralize = await sandbox.clone(path.join(options.workDir, 'before-generalize'));
    const first = await sandbox.runStep(step, { ...options.runOptions(step), after });
    out.firstRuns.set(step.id, first.all);
    if (first.exitCode !== 0) throw new Error(`step ${step.id} failed (${first.exitCode}):\n${first.all}`);
    const second = await sandbox.runStep(step, { ...options.runOptions(step), after });
    out.secondRuns.set(step.id, second.all);
    if (second.exitCode !== 0) throw new Error(`second run of ${step.id} failed (${second.exitCode}):\n${second.all}`);
    out.manifests.set(step.id, [first.after ?? '', second.after ?? '']);
  }
  if (!out.beforeGeneralize) throw new Error('the plan has no generalize step');
  return { ...out, beforeGeneralize: out.beforeGeneralize };
}
