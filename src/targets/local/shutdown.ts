/**
 * Stopping a VM the hard way only when the soft ways fail: the ACPI power button over QMP (the
 * guest shuts down cleanly), then QMP `quit` (QEMU ends at once), then SIGKILL, each with a
 * deadline. The same for a VM this process started and for one known only from the ledger.
 */
import type { QmpClient } from './qmp.js';

export interface VmExit {
  exitCode?: number;
  signal?: string;
  /** The end of QEMU's stderr, for error messages (unknown for a VM another process started). */
  stderrTail: string;
}

export interface ShutdownResult {
  /** What stopped it: the guest powering off, QEMU's quit command, or SIGKILL. */
  how: 'powerdown' | 'quit' | 'kill' | 'already-exited';
  exit: VmExit;
}

/** What the escalation needs of a running QEMU. */
export interface StoppableVm {
  name: string;
  /** Its exit, once it has exited. */
  exit(): VmExit | undefined;
  /** A QMP connection to it; undefined when the socket cannot be reached. */
  qmp(): Promise<QmpClient | undefined>;
  waitForExit(timeoutMs: number, what: string): Promise<VmExit>;
  kill(): Promise<VmExit>;
}

const QUIT_GRACE_MS = 10_000;

export async function shutdownVm(vm: StoppableVm, timeoutMs: number): Promise<ShutdownResult> {
  const before = vm.exit();
  if (before) return { how: 'already-exited', exit: before };
  const qmp = await vm.qmp();
  try {
    if (qmp) {
      // A guest still booting ignores the power button; a failed QMP call falls through the same way.
      const poweredOff = await qmp.execute('system_powerdown').then(() => vm.waitForExit(timeoutMs, `VM ${vm.name} to power off`)).catch(() => undefined);
      if (poweredOff) return { how: 'powerdown', exit: poweredOff };
      const quit = await qmp.execute('quit').then(() => vm.waitForExit(QUIT_GRACE_MS, `QEMU of VM ${vm.name} to quit`)).catch(() => undefined);
      if (quit) return { how: 'quit', exit: quit };
    }
  } finally {
    qmp?.close();
  }
  return { how: 'kill', exit: await vm.kill() };
}
