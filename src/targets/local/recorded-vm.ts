/**
 * A VM known only from its ledger entry: started by another kiln process (one that was killed, or
 * kept it with `--on-error abort`), reached by its pid and QMP socket. A resumed build stops it;
 * cleanup kills it. A pid is only ever signalled while it is a QEMU running that VM, never a
 * recycled one.
 */
import { readdir, readFile } from 'node:fs/promises';
import { done, notYet, waitFor } from '../../core/wait.js';
import type { LedgerEntry } from '../../pipeline/ledger.js';
import type { DestroyOptions } from '../target.js';
import { removeVmFiles } from './qemu.js';
import { QmpClient } from './qmp.js';
import { shutdownVm, type ShutdownResult, type VmExit } from './shutdown.js';

const KILL_TIMEOUT_MS = 30_000;
/** No exit code or stderr is known of a process this one did not start. */
const UNKNOWN_EXIT: VmExit = { stderrTail: '' };

/** Stops the recorded VM as a build's stop does: power button, quit, then SIGKILL. */
export async function stopRecordedVm(entry: LedgerEntry, timeoutMs: number): Promise<ShutdownResult> {
  const pid = Number(entry.id);
  const name = vmNameOf(entry);
  const running = await isOurVm(pid, name);
  const result = await shutdownVm(
    {
      name,
      exit: () => (running ? undefined : UNKNOWN_EXIT),
      qmp: () => QmpClient.connect(entry.extra?.qmpSocket ?? '', 10_000).catch(() => undefined),
      waitForExit: async (ms, what) => {
        await waitUntilGone(pid, name, { what, timeoutMs: ms });
        return UNKNOWN_EXIT;
      },
      kill: () => killVm(pid, name),
    },
    timeoutMs,
  );
  await removeFilesOf(entry);
  return result;
}

/**
 * Kills a recorded VM. An intent without a pid (kiln died between starting QEMU and recording it)
 * is found by its unique name among the running QEMU processes.
 */
export async function killRecordedVm(entry: LedgerEntry, options: DestroyOptions): Promise<void> {
  const name = vmNameOf(entry);
  const pids = entry.id ? [Number(entry.id)] : await qemuPidsNamed(name);
  for (const pid of pids) {
    if (!(await isOurVm(pid, name))) continue;
    options.log(`local: killing QEMU ${pid} of ${name}`);
    await killVm(pid, name, options.signal);
  }
  await removeFilesOf(entry);
}

async function killVm(pid: number, name: string, signal?: AbortSignal): Promise<VmExit> {
  if (await isOurVm(pid, name)) process.kill(pid, 'SIGKILL');
  await waitUntilGone(pid, name, { what: `QEMU ${pid} to exit`, timeoutMs: KILL_TIMEOUT_MS, signal });
  return { signal: 'SIGKILL', stderrTail: '' };
}

function waitUntilGone(pid: number, name: string, options: { what: string; timeoutMs: number; signal?: AbortSignal }): Promise<boolean> {
  return waitFor(async () => ((await isOurVm(pid, name)) ? notYet('running') : done(true)), { ...options, initialDelayMs: 100, maxDelayMs: 2000 });
}

/** A QEMU that is killed leaves its pid file and socket (kiln, killed too, did not remove them). */
async function removeFilesOf(entry: LedgerEntry): Promise<void> {
  if (entry.extra?.qmpSocket) await removeVmFiles({ qmpSocket: entry.extra.qmpSocket, pidFile: entry.extra.pidFile });
}

function vmNameOf(entry: LedgerEntry): string {
  return entry.extra?.vmName ?? entry.name;
}

/** True when `pid` is a QEMU process running the named VM. */
async function isOurVm(pid: number, vmName: string): Promise<boolean> {
  try {
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return cmdline.some((arg) => arg.includes('qemu-system')) && cmdline.includes(vmName);
  } catch {
    return false;
  }
}

async function qemuPidsNamed(vmName: string): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name)).map(Number);
  const ours = await Promise.all(pids.map(async (pid) => ((await isOurVm(pid, vmName)) ? pid : undefined)));
  return ours.filter((pid): pid is number => pid !== undefined);
}
