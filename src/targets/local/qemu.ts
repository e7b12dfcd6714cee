/**
 * launchVm: runs one local build VM under QEMU and hands back what a driver needs: where SSH
 * listens, the process, a graceful shutdown (shutdown.ts) and the exit. The console goes to a log
 * file and, line by line, to a callback. The VM ends when this process exits (exit-guard.ts) unless
 * it is kept.
 */
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import type { Socket } from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { execa } from 'execa';
import { asKilnError, KilnError } from '../../core/errors.js';
import { done, notYet, waitFor } from '../../core/wait.js';
import type { Accel } from './accel.js';
import { terminateAtExit } from './exit-guard.js';
import { imageInfo } from './image-info.js';
import { QEMU_BINARY, qemuArgs, type DiskBus, type GuestForward } from './qemu-args.js';
import { QmpClient } from './qmp.js';
import { shutdownVm, type ShutdownResult, type VmExit } from './shutdown.js';

export { createBlankDisk, createOverlay } from './disks.js';
export type { DiskBus, GuestForward } from './qemu-args.js';
export type { ShutdownResult, VmExit } from './shutdown.js';

export interface LaunchVmOptions {
  name: string;
  /** Holds the pid file and (when the path is short enough) the QMP socket. */
  workDir: string;
  /** The VM's own root disk, normally a qcow2 overlay over a base image. */
  rootDisk: string;
  dataDisks?: { path: string; serial: string; bus?: DiskBus }[];
  seedIso?: string;
  cpus: number;
  memoryMiB: number;
  /** hostAddress must be a 127.x.x.x address; hostPort 0 lets the host pick a free port. */
  sshForward: { hostAddress: string; hostPort: number };
  guestForwards?: GuestForward[];
  /** Default restricted: the guest reaches nothing but the forwards. */
  network?: 'restricted' | 'open';
  accel: Accel;
  /** QEMU CPU model, normally the one detectAccel chose. */
  cpu?: string;
  serialLogPath: string;
  onConsoleLine?: (line: string) => void;
  /** How long QEMU may take to open its QMP socket. Default 30 s. */
  startTimeoutMs?: number;
}

export interface VmHandle {
  name: string;
  pid: number;
  sshAddress: { host: string; port: number };
  qmpSocket: string;
  pidFile: string;
  exited: Promise<VmExit>;
  /** True once the QEMU process has exited. */
  hasExited(): boolean;
  shutdown(options: { timeoutMs: number }): Promise<ShutdownResult>;
  kill(): Promise<VmExit>;
  /** Lets the VM outlive this process (it is terminated at exit otherwise); the handle is done with. */
  keepAfterExit(): void;
}

/** A QMP socket whose path in the work dir would be too long for a unix socket goes in a temp dir named so. */
const PRIVATE_SOCKET_DIR_PREFIX = 'kiln-qmp-';
const MAX_UNIX_SOCKET_PATH = 100;
const STDERR_TAIL_CHARS = 2000;

export async function launchVm(options: LaunchVmOptions): Promise<VmHandle> {
  // slirp runs socat per guest connection; missing, it would only show as refused connections in the guest.
  if (options.guestForwards?.length && !(await onPath('socat'))) {
    throw new KilnError('LOCAL', 'guest forwards need socat on the host: install the socat package', { vm: options.name });
  }
  await mkdir(options.workDir, { recursive: true });
  const [root, ...data] = await Promise.all([
    imageInfo(options.rootDisk),
    ...(options.dataDisks ?? []).map((d) => imageInfo(d.path)),
  ]);
  if (!root) throw new KilnError('INTERNAL', 'root disk info missing');
  const socketDir = path.join(options.workDir, 'qmp.sock').length < MAX_UNIX_SOCKET_PATH ? undefined : await mkdtemp(path.join(os.tmpdir(), PRIVATE_SOCKET_DIR_PREFIX));
  const qmpSocket = path.join(socketDir ?? options.workDir, 'qmp.sock');
  const pidFile = path.join(options.workDir, 'qemu.pid');
  await rm(qmpSocket, { force: true });

  const args = qemuArgs({
    name: options.name,
    accel: options.accel,
    ...(options.cpu ? { cpu: options.cpu } : {}),
    cpus: options.cpus,
    memoryMiB: options.memoryMiB,
    rootDisk: { path: path.resolve(options.rootDisk), format: root.format },
    dataDisks: (options.dataDisks ?? []).map((d, i) => ({ ...d, path: path.resolve(d.path), format: data[i]?.format ?? 'qcow2' })),
    seedIso: options.seedIso && path.resolve(options.seedIso),
    sshHostAddress: options.sshForward.hostAddress,
    sshHostPort: options.sshForward.hostPort,
    guestForwards: options.guestForwards ?? [],
    network: options.network ?? 'restricted',
    qmpSocket,
    serialLogPath: path.resolve(options.serialLogPath),
    pidFile,
  });

  // Its own session (detached): kiln, not a signal to kiln's process group, decides when QEMU ends.
  const vm = execa(QEMU_BINARY, args, { stdin: 'ignore', buffer: { stdout: false, stderr: true }, reject: false, detached: true, cleanup: false });
  if (vm.pid === undefined) throw new KilnError('LOCAL', `${QEMU_BINARY} did not start`, { vm: options.name });
  const liftExitGuard = terminateAtExit(vm.pid);
  let exitInfo: VmExit | undefined;
  const exited: Promise<VmExit> = vm.then(async (result) => {
    liftExitGuard();
    const stderr = String(result.stderr ?? '').trim();
    exitInfo = {
      ...(result.exitCode !== undefined ? { exitCode: result.exitCode } : {}),
      ...(result.signal ? { signal: result.signal } : {}),
      stderrTail: stderr.slice(-STDERR_TAIL_CHARS),
    };
    await removeVmFiles({ qmpSocket, pidFile });
    return exitInfo;
  });
  if (vm.stdout) forwardConsole(vm.stdout, options.onConsoleLine);

  const startFailure = (e: VmExit) =>
    new KilnError('LOCAL', `QEMU exited while starting (${describeExit(e)})${e.stderrTail ? `: ${e.stderrTail}` : ''}`, { vm: options.name });
  let qmp: QmpClient;
  let sshPort: number;
  const stopConnecting = new AbortController();
  try {
    qmp = await Promise.race([
      QmpClient.connect(qmpSocket, options.startTimeoutMs ?? 30_000, stopConnecting.signal),
      exited.then((e) => {
        stopConnecting.abort();
        throw startFailure(e);
      }),
    ]);
    sshPort = options.sshForward.hostPort || (await forwardedPort(qmp, options.sshForward.hostAddress, 22));
  } catch (err) {
    // QEMU may close the QMP socket an instant before it exits with the real reason on stderr.
    const ownExit = await waitFor(async () => (exitInfo ? done(exitInfo) : notYet()), {
      what: 'QEMU to exit after a failed start',
      timeoutMs: 2000,
      initialDelayMs: 50,
    }).catch(() => undefined);
    if (!ownExit) {
      vm.kill('SIGKILL');
      await exited;
    }
    throw ownExit ? startFailure(ownExit) : asKilnError(err, 'LOCAL', { vm: options.name });
  }

  const waitForExit = (timeoutMs: number, what: string): Promise<VmExit> =>
    waitFor(async () => (exitInfo ? done(exitInfo) : notYet()), { what, timeoutMs, initialDelayMs: 100, maxDelayMs: 2000 });
  const kill = async (): Promise<VmExit> => {
    vm.kill('SIGKILL');
    qmp.close();
    return exited;
  };

  return {
    name: options.name,
    pid: vm.pid,
    sshAddress: { host: options.sshForward.hostAddress, port: sshPort },
    qmpSocket,
    pidFile,
    exited,
    hasExited: () => exitInfo !== undefined,
    kill,
    shutdown: ({ timeoutMs }) => shutdownVm({ name: options.name, exit: () => exitInfo, qmp: async () => qmp, waitForExit, kill }, timeoutMs),
    keepAfterExit() {
      liftExitGuard();
      qmp.close();
      // Nothing of QEMU's may hold this process's event loop open any more. Once kiln has exited,
      // QEMU's console writes fail with EPIPE (QEMU ignores SIGPIPE), so the console log ends there.
      vm.unref();
      for (const pipe of [vm.stdout, vm.stderr]) (pipe as Socket | null)?.unref();
    },
  };
}

/**
 * Removes what a QEMU process leaves when it is killed (it removes them itself when it quits): its
 * pid file, its QMP socket and the socket's private temp dir, if it had one.
 */
export async function removeVmFiles(vm: { qmpSocket: string; pidFile?: string }): Promise<void> {
  const socketDir = path.dirname(vm.qmpSocket);
  const privateDir = path.basename(socketDir).startsWith(PRIVATE_SOCKET_DIR_PREFIX) && path.dirname(socketDir) === os.tmpdir();
  await Promise.all([
    rm(privateDir ? socketDir : vm.qmpSocket, { recursive: privateDir, force: true }),
    vm.pidFile ? rm(vm.pidFile, { force: true }) : undefined,
  ]);
}

/** Reads the host port slirp actually bound for a forward to `guestPort` (needed when it was 0). */
async function forwardedPort(qmp: QmpClient, hostAddress: string, guestPort: number): Promise<number> {
  const table = await qmp.hmp('info usernet');
  for (const line of table.split(/\r?\n/)) {
    const m = /TCP\[HOST_FORWARD\]\s+\d+\s+(\S+)\s+(\d+)\s+\S+\s+(\d+)/.exec(line);
    if (m && m[1] === hostAddress && Number(m[3]) === guestPort) return Number(m[2]);
  }
  throw new KilnError('LOCAL', `QEMU reports no forward from ${hostAddress} to guest port ${guestPort}: ${table}`);
}

function forwardConsole(stdout: NodeJS.ReadableStream, onLine?: (line: string) => void): void {
  const lines = readline.createInterface({ input: stdout, crlfDelay: Infinity });
  lines.on('line', (raw) => {
    // eslint-disable-next-line no-control-regex -- stripping terminal escapes is the point
    const line = raw.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
    onLine?.(line);
  });
}

function describeExit(e: VmExit): string {
  return e.signal ? `signal ${e.signal}` : `exit code ${e.exitCode ?? 'unknown'}`;
}

async function onPath(command: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    try {
      await access(path.join(dir, command), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}
