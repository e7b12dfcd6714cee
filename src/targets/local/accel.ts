/**
 * Which QEMU accelerator to use. /dev/kvm existing is not enough: on some nested hosts KVM guests
 * crash, hang or run far slower than plain emulation. So the same small workload (an empty machine
 * running its BIOS through POST to "No bootable device") is timed under TCG and under KVM, and KVM is
 * chosen only when it finishes and is not slower than TCG. The answer is cached for the process.
 */
import { constants } from 'node:fs';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { done, notYet, waitFor } from '../../core/wait.js';
import { defaultCpu, QEMU_BINARY } from './qemu-args.js';

export type Accel = 'kvm' | 'tcg';

export interface AccelDecision {
  accel: Accel;
  /** The QEMU CPU model probed with this accelerator; launch with the same. */
  cpu: string;
  /** Why, for the build log. */
  reason: string;
}

export interface DetectAccelOptions {
  /** Probe again instead of returning the cached answer. */
  refresh?: boolean;
}

const BIOS_DONE = 'No bootable device';
/** Working KVM runs the probe in well under a second; this only bounds a stalled guest. */
const MIN_KVM_DEADLINE_MS = 3000;
const TCG_PROBE_TIMEOUT_MS = 60_000;
let cached: Promise<AccelDecision> | undefined;

export function detectAccel(options: DetectAccelOptions = {}): Promise<AccelDecision> {
  if (!cached || options.refresh) cached = decide();
  return cached;
}

async function decide(): Promise<AccelDecision> {
  const tcg = (reason: string): AccelDecision => ({ accel: 'tcg', cpu: defaultCpu('tcg'), reason });
  const forced = process.env.KILN_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return { accel: forced, cpu: defaultCpu(forced), reason: `forced by KILN_ACCEL=${forced}` };
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return tcg('/dev/kvm is missing or not readable and writable');
  }
  const baseline = await probeBios('tcg', defaultCpu('tcg'), TCG_PROBE_TIMEOUT_MS);
  if (typeof baseline === 'string') return tcg(`the TCG baseline probe failed (${baseline}), so KVM could not be compared; using TCG`);
  // Twice the TCG time absorbs noise from a busy host; a KVM guest slower than that is stalling.
  const deadline = Math.max(MIN_KVM_DEADLINE_MS, 2 * baseline);
  // KILN_KVM_CPU picks another model for hosts where "host" is refused (e.g. unsettable MSRs).
  const cpu = process.env.KILN_KVM_CPU || defaultCpu('kvm');
  const kvm = await probeBios('kvm', cpu, deadline);
  if (typeof kvm === 'string') return tcg(`the KVM probe (cpu ${cpu}) failed within ${deadline} ms: ${kvm} (TCG took ${baseline} ms)`);
  return { accel: 'kvm', cpu, reason: `the KVM probe ran its BIOS in ${kvm} ms (TCG: ${baseline} ms)` };
}

/** Runs an empty machine to the end of its BIOS; returns the milliseconds taken, or what went wrong. */
async function probeBios(accel: 'kvm' | 'tcg', cpu: string, timeoutMs: number): Promise<number | string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-accel-'));
  const debugLog = path.join(dir, 'bios.log');
  const started = Date.now();
  // SeaBIOS writes its progress to the debug console port 0x402.
  const vm = execa(QEMU_BINARY, [
    '-accel', accel, '-cpu', cpu, '-machine', 'q35', '-m', '32', '-smp', '1',
    '-nodefaults', '-display', 'none', '-serial', 'none', '-monitor', 'none', '-no-reboot',
    '-debugcon', `file:${debugLog}`, '-global', 'isa-debugcon.iobase=0x402',
  ], { reject: false, stdin: 'ignore' });
  let exited: string | undefined;
  void vm.then((result) => {
    const lastLine = String(result.stderr).trim().split('\n').pop() ?? '';
    exited = `qemu exited (${result.signal ?? `exit code ${result.exitCode}`}): ${lastLine}`;
  });
  try {
    const failure = await waitFor<string | undefined>(
      async () => {
        const text = await readFile(debugLog, 'utf8').catch(() => '');
        if (text.includes(BIOS_DONE)) return done(undefined);
        if (exited !== undefined) return done(exited);
        return notYet(`${text.length} bytes of BIOS output`);
      },
      { what: `the ${accel} probe VM to finish its BIOS`, timeoutMs, initialDelayMs: 20, maxDelayMs: 250 },
    );
    return failure ?? Date.now() - started;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    vm.kill('SIGKILL');
    await vm;
    await rm(dir, { recursive: true, force: true });
  }
}
