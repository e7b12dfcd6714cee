/**
 * The local target with a stand-in guest, for tests of kiln's process and resource handling: QEMU
 * runs for real (overlays, seed, QMP, under TCG) on a blank base image, so its guest never boots,
 * and SSH goes to a loopback sshd instead (the driver's test seam). Stop waits a second, not minutes,
 * for a power button nobody presses before QEMU is told to quit.
 */
import type { Plan } from '../../src/definition/plan.js';
import { LocalDriver } from '../../src/targets/local/driver.js';

export interface StandInGuest {
  /** The blank base image (createBlankDisk). */
  baseImage: string;
  /** Where captured images go. */
  outputDir: string;
  /** The sshd that answers for the guest: where it listens, its login, its key and host key. */
  ssh: { host: string; port: number; user: string; privateKey: string; hostKey: string };
}

/** How long stop waits for the power button: the blank guest never answers it. */
const STOP_TIMEOUT_MS = 1_000;

export function standInDriver(guest: StandInGuest): LocalDriver {
  return new LocalDriver({
    outputDir: guest.outputDir,
    network: 'restricted',
    stopTimeoutMs: STOP_TIMEOUT_MS,
    sshOverride: () => ({ host: guest.ssh.host, port: guest.ssh.port, username: guest.ssh.user, privateKey: guest.ssh.privateKey, hostKeys: [guest.ssh.hostKey] }),
  });
}

/** A local plan that runs nothing on this host: no provisioning, the blank base, TCG (nothing probes KVM). */
export function standInPlan(plan: Plan, guest: StandInGuest): Plan {
  if (plan.targetPlan.kind !== 'local') throw new Error(`a stand-in guest is for local plans, not ${plan.targetPlan.kind}`);
  return { ...plan, provision: [], targetPlan: { ...plan.targetPlan, baseImage: { path: guest.baseImage }, accelerator: 'tcg' } };
}
