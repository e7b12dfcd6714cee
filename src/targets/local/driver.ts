/**
 * The local target: builds on this machine with QEMU, so the pipeline cannot tell it from a cloud.
 * prepare = base image (built or given) + SSH keys; launch = copy-on-write root overlay, blank data
 * disk, NoCloud seed, QEMU; capture = standalone image files. Every file and the QEMU process are in
 * the ledger, so cleanup works from another process after a crash.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { KilnError } from '../../core/errors.js';
import type { LocalTargetPlan } from '../../definition/plan.js';
import type { BuildContext } from '../../pipeline/context.js';
import type { LedgerEntry } from '../../pipeline/ledger.js';
import { generateKeyPair } from '../../ssh/index.js';
import type { Artifact, DestroyOptions, InstanceOptions, SshAccess, TargetDriver } from '../target.js';
import { detectAccel, type Accel } from './accel.js';
import { defaultCpu } from './qemu-args.js';
import { buildBaseImage } from './base/build.js';
import { describeBaseImage } from './base/describe.js';
import { exportDisk, removeTemporaries, type ExportFormat, type ExportOutputs } from './capture.js';
import { createBlankDisk, createOverlay, launchVm, type GuestForward, type VmHandle } from './qemu.js';
import { killRecordedVm, stopRecordedVm } from './recorded-vm.js';
import { createSeedIso } from './seed.js';
import { launchLocalInstance } from './instance.js';

export interface LocalDriverOptions {
  /** Where base images are cached; default $KILN_CACHE_DIR or ~/.cache/kiln. */
  cacheDir?: string;
  /** Where captured images are written; default ./kiln-out. */
  outputDir?: string;
  /** Host loopback servers the guest may reach (artifact mirrors, a bundle server). */
  guestForwards?: GuestForward[];
  /**
   * open (default): the guest reaches the host's network through QEMU's NAT, to download K3s,
   * Helm and charts; restricted: it reaches nothing but the forwards (air-gapped builds, tests).
   */
  network?: 'open' | 'restricted';
  /** Resolves a base image path given relative to the definition. */
  definitionDir?: string;
  /**
   * How long stop waits for the guest to power off before QEMU is told to quit (a guest still
   * booting ignores the power button); default 5 min. Tests whose guest never boots set seconds.
   */
  stopTimeoutMs?: number;
  /**
   * Test seam: where to SSH instead of the guest's forwarded port, with which key and host key, for
   * tests that stand a loopback sshd in for a guest that never boots (QEMU still runs, on a blank
   * base image). Never set in production.
   */
  sshOverride?: (found: SshAccess) => SshAccess;
}

const STOP_TIMEOUT_MS = 5 * 60_000;

export function defaultCacheDir(): string {
  return process.env.KILN_CACHE_DIR ?? join(homedir(), '.cache', 'kiln');
}

export class LocalDriver implements TargetDriver {
  readonly name = 'local' as const;
  /** VMs this process launched, by build id (a resumed build finds its VM through the ledger). */
  private readonly vms = new Map<string, VmHandle>();

  constructor(private readonly options: LocalDriverOptions = {}) {}

  async prepare(ctx: BuildContext): Promise<void> {
    const t = targetPlan(ctx);
    const base = 'build' in t.baseImage
      ? (await buildBaseImage({ distro: t.baseImage.build, cacheDir: this.options.cacheDir ?? defaultCacheDir(), onLog: ctx.log.line, signal: ctx.signal })).path
      : (await describeBaseImage(this.basePath(t.baseImage.path))).path;
    const { accel, cpu } = await this.accelerator(t.accelerator, ctx);
    await ctx.state.setFacts({ sourceImage: base, accel, cpu });

    await mkdir(ctx.paths.root, { recursive: true, mode: 0o700 });
    const client = generateKeyPair(`kiln-${ctx.plan.buildId}`);
    await this.writeFile(ctx, ctx.paths.sshKey, client.privateKey, 'ssh-key');
    const host = generateKeyPair(`kiln-${ctx.plan.buildId}-host`);
    ctx.log.addSecret(client.privateKey);
    ctx.log.addSecret(host.privateKey);
    const seedPath = join(ctx.paths.work, 'seed.iso');
    await mkdir(ctx.paths.work, { recursive: true });
    await ctx.resources.create({ kind: 'file', name: seedPath }, async () => {
      await createSeedIso({
        path: seedPath,
        instanceId: ctx.plan.buildId,
        hostname: t.names.vm,
        user: { name: ctx.plan.access.sshUser, sshPublicKey: client.publicKey },
        hostKey: host,
      });
      return { id: seedPath };
    });
    await ctx.state.setFacts({ clientPublicKey: client.publicKey, hostPublicKey: host.publicKey });
    ctx.log.line(`local: base ${base}, ${accel} acceleration, host key ${host.publicKey.split(' ').slice(0, 2).join(' ').slice(0, 40)}...`);
  }

  async launch(ctx: BuildContext): Promise<void> {
    const t = targetPlan(ctx);
    const base = mustFact(ctx, 'sourceImage');
    const root = join(ctx.paths.work, 'root.qcow2');
    const data = join(ctx.paths.work, 'data.qcow2');
    await ctx.resources.create({ kind: 'file', name: root }, async () => ({ id: (await createOverlay(base, root, ctx.plan.disks.root.sizeGb), root) }));
    await ctx.resources.create({ kind: 'file', name: data }, async () => ({ id: (await createBlankDisk(data, ctx.plan.disks.data.sizeGb), data) }));
    const vm = await ctx.resources.create({ kind: 'vm', name: t.names.vm }, async () => {
      const handle = await launchVm({
        name: t.names.vm,
        workDir: ctx.paths.work,
        rootDisk: root,
        dataDisks: [{ path: data, serial: ctx.plan.disks.data.deviceName ?? 'kiln-data' }],
        seedIso: join(ctx.paths.work, 'seed.iso'),
        cpus: t.cpus,
        memoryMiB: t.memoryMiB,
        sshForward: { hostAddress: '127.0.0.1', hostPort: 0 },
        guestForwards: this.options.guestForwards ?? [],
        network: this.options.network ?? 'open',
        accel: mustFact(ctx, 'accel') as Accel,
        cpu: mustFact(ctx, 'cpu'),
        serialLogPath: ctx.paths.console,
        onConsoleLine: (line) => ctx.log.line(`console| ${line}`),
      });
      this.vms.set(ctx.plan.buildId, handle);
      return { id: String(handle.pid), extra: { qmpSocket: handle.qmpSocket, pidFile: handle.pidFile, vmName: t.names.vm }, handle };
    });
    await ctx.state.setFacts({ sshHost: vm.handle.sshAddress.host, sshPort: String(vm.handle.sshAddress.port) });
    ctx.log.line(`local: VM ${t.names.vm} (pid ${vm.id}) started; SSH forwarded on ${vm.handle.sshAddress.host}:${vm.handle.sshAddress.port}`);
  }

  async sshAccess(ctx: BuildContext): Promise<SshAccess> {
    const found: SshAccess = {
      host: mustFact(ctx, 'sshHost'),
      port: Number(mustFact(ctx, 'sshPort')),
      username: ctx.plan.access.sshUser,
      privateKey: await readFile(ctx.paths.sshKey, 'utf8'),
      hostKeys: [mustFact(ctx, 'hostPublicKey')],
    };
    return this.options.sshOverride?.(found) ?? found;
  }

  async runtimeEnv(): Promise<Record<string, string>> {
    return {};
  }

  async stop(ctx: BuildContext): Promise<void> {
    const entry = ctx.resources.one('vm');
    const handle = this.vms.get(ctx.plan.buildId);
    // Without a handle, the build was resumed: an earlier kiln process started (and kept) the VM.
    const result = handle ? await handle.shutdown({ timeoutMs: this.stopTimeoutMs }) : await stopRecordedVm(entry, this.stopTimeoutMs);
    ctx.log.line(`local: VM ${entry.extra?.vmName ?? entry.name} stopped (${result.how})`);
    this.vms.delete(ctx.plan.buildId);
    await ctx.resources.forget(entry);
  }

  keepAfterExit(ctx: BuildContext): void {
    this.vms.get(ctx.plan.buildId)?.keepAfterExit();
    this.vms.delete(ctx.plan.buildId);
  }

  async capture(ctx: BuildContext): Promise<Artifact[]> {
    const t = targetPlan(ctx);
    const outputDir = resolve(this.options.outputDir ?? 'kiln-out');
    await mkdir(outputDir, { recursive: true });
    const artifacts: Artifact[] = [];
    const disks = [
      { disk: 'root' as const, source: join(ctx.paths.work, 'root.qcow2'), name: t.names.rootImage },
      { disk: 'data' as const, source: join(ctx.paths.work, 'data.qcow2'), name: t.names.dataImage },
    ];
    for (const { disk, source, name } of disks) {
      const outputs = exportPaths(outputDir, name, t.publish.formats);
      // Each output is recorded before it is written, so a crash mid-export leaves nothing unlisted.
      await Promise.all(Object.values(outputs).map((path) => ctx.resources.adopt({ kind: 'file', name: path, id: path, role: 'artifact' })));
      const exported = await exportDisk(source, outputs, { onLog: ctx.log.line, signal: ctx.signal });
      for (const file of Object.values(exported)) {
        artifacts.push({ kind: 'image-file', id: file.path, name, disk, format: file.format, path: file.path, sizeBytes: file.sizeBytes, sha256: file.sha256 });
      }
    }
    return artifacts;
  }

  async launchInstance(ctx: BuildContext, images: Artifact[], options: InstanceOptions): Promise<SshAccess> {
    const t = targetPlan(ctx);
    const { accel, cpu } = await this.accelerator(t.accelerator, ctx);
    const { access, vm } = await launchLocalInstance(ctx, t, images, options, { accel, cpu, network: this.options.network ?? 'open', guestForwards: this.options.guestForwards ?? [] });
    // stop() then shuts it down through its handle: power button, then quit, each with a deadline.
    this.vms.set(ctx.plan.buildId, vm);
    return access;
  }

  async publish(): Promise<Artifact[]> {
    return [];
  }

  async destroy(entry: LedgerEntry, options: DestroyOptions): Promise<void> {
    if (entry.kind === 'vm') {
      await killRecordedVm(entry, options);
      return;
    }
    if (entry.kind === 'file') {
      const path = entry.id ?? entry.name;
      await rm(path, { force: true });
      // An image file is recorded before it is exported: a kill mid-export leaves its temporaries.
      if (entry.role === 'artifact') await removeTemporaries(path);
      return;
    }
    throw new KilnError('INTERNAL', `the local target cannot delete a ${entry.kind}`);
  }

  private get stopTimeoutMs(): number {
    return this.options.stopTimeoutMs ?? STOP_TIMEOUT_MS;
  }

  private basePath(path: string): string {
    return isAbsolute(path) ? path : resolve(this.options.definitionDir ?? '.', path);
  }

  private async accelerator(requested: LocalTargetPlan['accelerator'], ctx: BuildContext): Promise<{ accel: Accel; cpu: string }> {
    if (requested !== 'auto') return { accel: requested, cpu: defaultCpu(requested) };
    const decision = await detectAccel();
    ctx.log.line(`local: using ${decision.accel}: ${decision.reason}`);
    return decision;
  }

  private async writeFile(ctx: BuildContext, path: string, content: string, kind: string): Promise<void> {
    await ctx.resources.create({ kind: 'file', name: path, extra: { holds: kind } }, async () => {
      await writeFile(path, content, { mode: 0o600 });
      return { id: path };
    });
  }
}

function targetPlan(ctx: BuildContext): LocalTargetPlan {
  if (ctx.plan.targetPlan.kind !== 'local') throw new KilnError('INTERNAL', `local driver got a ${ctx.plan.targetPlan.kind} plan`);
  return ctx.plan.targetPlan;
}

function mustFact(ctx: BuildContext, key: string): string {
  const value = ctx.state.fact(key);
  if (value === undefined) throw new KilnError('INTERNAL', `build ${ctx.plan.buildId} has no ${key} yet: was a step skipped?`);
  return value;
}

const EXTENSIONS: Record<ExportFormat, string> = { qcow2: 'qcow2', raw: 'raw', vmdk: 'vmdk', vhd: 'vhd', gceTar: 'tar.gz' };

function exportPaths(dir: string, name: string, formats: LocalTargetPlan['publish']['formats']): ExportOutputs {
  const outputs: ExportOutputs = {};
  for (const format of formats) {
    const key: ExportFormat = format === 'gce-tar' ? 'gceTar' : format;
    outputs[key] = join(dir, `${name}.${EXTENSIONS[key]}`);
  }
  return outputs;
}
