/**
 * Runs a plan's provisioning steps on the build VM: one upload of provision/ and every planned file
 * (one tar stream), then each script in order with sudo and its environment. The scripts are
 * idempotent, so a step interrupted by a dropped connection is simply run again after reconnecting.
 */
import { cp, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KilnError } from '../core/errors.js';
import type { ProvisionStep } from '../definition/plan.js';
import { isDisconnected, type SshSession } from '../ssh/index.js';
import { STAGING_DIR } from './steps.js';

/** The repository's provision/ folder, next to src/ (and to dist/ when compiled). */
export const SCRIPTS_DIR = fileURLToPath(new URL('../../provision/', import.meta.url));

export interface ProvisionOptions {
  session: SshSession;
  steps: ProvisionStep[];
  /** Values for each step's runtimeEnv, from the target. */
  runtimeEnv: Record<string, string>;
  log: (line: string) => void;
  onStep?: (step: ProvisionStep, index: number) => void;
  signal?: AbortSignal;
  /** Deadline for one script; default 30 minutes. */
  stepTimeoutMs?: number;
  /** How often a step is tried when the connection drops under it; default 3. */
  attempts?: number;
  scriptsDir?: string;
}

export async function runProvisioning(options: ProvisionOptions): Promise<void> {
  const { session, steps, log } = options;
  if (steps.length === 0) return;
  await waitForFirstBoot(session, log, options.signal);
  await stage(session, steps, options.scriptsDir ?? SCRIPTS_DIR, log, options.signal);
  for (const [index, step] of steps.entries()) {
    options.onStep?.(step, index);
    log(`provision ${index + 1}/${steps.length}: ${step.id}: ${step.description}`);
    await runStep(step, options);
  }
}

async function runStep(step: ProvisionStep, options: ProvisionOptions): Promise<void> {
  const env = { ...step.env, ...pick(options.runtimeEnv, step.runtimeEnv, step.id) };
  const attempts = options.attempts ?? 3;
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await options.session.exec(`bash ${STAGING_DIR}/provision/${step.script}`, {
        sudo: true,
        env,
        timeoutMs: options.stepTimeoutMs ?? 30 * 60_000,
        signal: options.signal,
        onLine: (_stream, line) => options.log(`  ${step.id}| ${line}`),
      });
      if (result.code === 0) return;
      const how = result.code === null ? `was killed (${result.signal ?? 'signal'})` : `exited with code ${result.code}`;
      throw new KilnError('PROVISION', `provisioning step ${step.id} (provision/${step.script}) ${how}; last lines:\n${result.tail.join('\n')}`, {
        step: step.id,
        script: `provision/${step.script}`,
        exitCode: result.code ?? undefined,
      });
    } catch (err) {
      if (!isDisconnected(err) || attempt >= attempts) throw err;
      options.log(`provision: connection dropped during ${step.id} (attempt ${attempt}/${attempts}); reconnecting to run it again`);
      await options.session.reconnect();
    }
  }
}

/**
 * SSH answers before cloud-init has finished first boot (users, host keys, growing the disk), and a
 * script racing it can fail in odd ways; wait for it where cloud-init runs this boot. After
 * generalize (`cloud-init clean`, e.g. provisioning run again on a resumed build) it has no
 * instance and would never finish, so there is nothing to wait for.
 */
async function waitForFirstBoot(session: SshSession, log: (line: string) => void, signal?: AbortSignal): Promise<void> {
  const script = 'if command -v cloud-init >/dev/null && [ -e /var/lib/cloud/instance ]; then cloud-init status --wait; else echo "cloud-init: nothing to wait for"; fi';
  const result = await session.exec(script, {
    sudo: true,
    timeoutMs: 10 * 60_000,
    signal,
    quiet: true,
  });
  const status = result.stdoutTail.trim().split('\n').pop() ?? '';
  // Exit 2 is "done, but degraded" (a recoverable warning); anything else non-zero is worth a line.
  log(result.code === 0 ? `first boot: ${status || 'done'}` : `first boot: cloud-init ended with code ${result.code}: ${status}; provisioning goes on`);
}

/**
 * Copies the scripts and every planned file into one local tree and uploads it in one stream; then
 * each large file (the offline bundle) on its own, resumable and checked against its sha256 there.
 */
async function stage(session: SshSession, steps: ProvisionStep[], scriptsDir: string, log: (line: string) => void, signal?: AbortSignal): Promise<void> {
  const local = await mkdtemp(join(tmpdir(), 'kiln-stage-'));
  const files = steps.flatMap((s) => s.files);
  try {
    await cp(scriptsDir, join(local, 'provision'), { recursive: true });
    for (const file of files) {
      const rel = relative(STAGING_DIR, file.path);
      if (rel.startsWith('..') || rel === '') throw new KilnError('INTERNAL', `planned file ${file.path} is outside ${STAGING_DIR}`);
      if (file.large) continue;
      const target = join(local, rel);
      await mkdir(dirname(target), { recursive: true });
      if (file.content !== undefined) await writeFile(target, file.content, { mode: parseInt(file.mode, 8) });
      else if (file.source) await cp(file.source, target);
    }
    await session.run(`rm -rf ${STAGING_DIR}`, { sudo: true, signal });
    await session.uploadTree(local, STAGING_DIR, { sudo: true, signal });
  } finally {
    await rm(local, { recursive: true, force: true });
  }
  for (const file of files.filter((f) => f.large && f.source)) {
    const source = file.source ?? '';
    // One attempt may take as long as the file needs at 2 MB/s (a drop resumes; a deadline does not).
    const timeoutMs = Math.max(30 * 60_000, ((await stat(source)).size / (2 * 1024 * 1024)) * 1000);
    const uploaded = await session.uploadFile(source, file.path, { sudo: true, mode: file.mode, signal, timeoutMs });
    log(`uploaded ${source} to ${file.path}: ${uploaded.bytes} bytes in ${uploaded.durationMs} ms, sha256 ${uploaded.sha256} verified there`);
  }
}

function pick(values: Record<string, string>, names: string[], stepId: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const value = values[name];
    if (value === undefined) throw new KilnError('INTERNAL', `the target did not supply ${name} for provisioning step ${stepId}`);
    out[name] = value;
  }
  return out;
}
