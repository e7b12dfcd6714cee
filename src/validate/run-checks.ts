/**
 * Runs a plan's checks on a booted instance: first waits for the boot unit to finish (it deploys or
 * upgrades the product, which can take long), then runs every check with sudo and compares its
 * trimmed output with what is expected. A check that fails does not stop the others.
 */
import { done, notYet, waitFor } from '../core/wait.js';
import type { PlannedCheck } from '../definition/plan.js';
import type { SshSession } from '../ssh/index.js';

export interface CheckResult {
  name: string;
  source: PlannedCheck['source'];
  passed: boolean;
  expected?: string;
  /** The check's output (trimmed, last lines), or why it could not run. */
  actual: string;
  exitCode: number | null;
}

export interface RunChecksOptions {
  /** Extra variables every check gets (e.g. the validation key). */
  runtimeEnv: Record<string, string>;
  /** How long the boot unit may take to finish. */
  bootTimeoutMs: number;
  signal: AbortSignal;
  log: (line: string) => void;
}

const CHECK_TIMEOUT_MS = 2 * 60_000;

/** Waits until kiln-boot.service has finished (active or failed), then runs every check. */
export async function runChecks(session: SshSession, checks: PlannedCheck[], options: RunChecksOptions): Promise<CheckResult[]> {
  await waitForBootUnit(session, options);
  const results: CheckResult[] = [];
  for (const check of checks) {
    options.signal.throwIfAborted();
    const result = await session.exec(check.command, { sudo: true, env: { ...check.env, ...options.runtimeEnv }, timeoutMs: CHECK_TIMEOUT_MS, signal: options.signal, quiet: true });
    const actual = (result.stdoutTail.trim() || result.stderrTail.trim()).split('\n').slice(-3).join(' | ');
    const output = result.stdoutTail.trim();
    const passed = result.code === 0 && (check.expect === undefined || output === check.expect.trim());
    results.push({ name: check.name, source: check.source, passed, ...(check.expect === undefined ? {} : { expected: check.expect }), actual, exitCode: result.code });
    options.log(`check ${passed ? 'passed' : 'FAILED'}: ${check.name}${passed ? '' : ` (got ${JSON.stringify(actual)}, exit ${result.code ?? 'signal'})`}`);
  }
  return results;
}

/** The boot unit is a oneshot with RemainAfterExit: "active" once it succeeded, "failed" if not. */
async function waitForBootUnit(session: SshSession, options: RunChecksOptions): Promise<void> {
  await waitFor(
    async () => {
      const state = (await session.exec('systemctl show --property=ActiveState --value kiln-boot.service', { quiet: true, signal: options.signal, timeoutMs: 60_000 })).stdoutTail.trim();
      return state === 'active' || state === 'failed' ? done(state) : notYet(state || 'unknown');
    },
    {
      what: 'the boot unit (kiln-boot.service) to finish',
      timeoutMs: options.bootTimeoutMs,
      initialDelayMs: 2_000,
      maxDelayMs: 15_000,
      signal: options.signal,
      onPoll: (attempt, state) => {
        if (attempt % 4 === 0) options.log(`waiting for the boot unit: ${String(state)}`);
      },
    },
  );
}
