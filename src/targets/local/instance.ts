/**
 * A customer's instance on the local target, for validation: a copy-on-write overlay of the
 * captured root image, the image's own data disk (an overlay of it; blank if it has none) or a disk the caller gives
 * (attached as it is, like a customer attaching an existing data volume), a fresh NoCloud seed
 * authorizing the validation key, and QEMU. Every file and the VM go through ctx.resources, so
 * undo (or `kiln cleanup`) deletes them.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { KilnError } from '../../core/errors.js';
import type { LocalTargetPlan } from '../../definition/plan.js';
import type { BuildContext } from '../../pipeline/context.js';
import { generateKeyPair } from '../../ssh/index.js';
import type { Artifact, InstanceOptions, SshAccess } from '../target.js';
import type { Accel } from './accel.js';
import { createBlankDisk, createOverlay, launchVm, type GuestForward, type VmHandle } from './qemu.js';
import { createSeedIso } from './seed.js';

/** Formats QEMU boots from, best first. */
const BOOTABLE_FORMATS = ['qcow2', 'raw', 'vmdk', 'vhd'];

export interface LocalInstanceEnvironment {
  accel: Accel;
  cpu: string;
  network: 'open' | 'restricted';
  guestForwards: GuestForward[];
}

export async function launchLocalInstance(
  ctx: BuildContext,
  t: LocalTargetPlan,
  images: Artifact[],
  options: InstanceOptions,
  env: LocalInstanceEnvironment,
): Promise<{ access: SshAccess; vm: VmHandle }> {
  const work = join(ctx.paths.work, 'instance');
  await mkdir(work, { recursive: true, mode: 0o700 });
  const vmName = `${t.names.vm}-check`;
  const root = join(work, 'root.qcow2');
  const rootImage = bootable(images, 'root');
  await ctx.resources.create({ kind: 'file', name: root }, async () => ({ id: (await createOverlay(rootImage, root), root) }));

  let data = options.dataDisk ? resolve(options.dataDisk) : join(work, 'data.qcow2');
  if (!options.dataDisk) {
    // The image's data disk when it has one, otherwise a blank disk the boot unit formats.
    const dataImage = images.some((a) => a.disk === 'data') ? bootable(images, 'data') : undefined;
    await ctx.resources.create({ kind: 'file', name: data }, async () => {
      await (dataImage ? createOverlay(dataImage, data) : createBlankDisk(data, ctx.plan.disks.data.sizeGb));
      return { id: data };
    });
  }
  data = resolve(data);

  const hostKey = generateKeyPair(`${vmName}-host`);
  ctx.log.addSecret(hostKey.privateKey);
  const seed = join(work, 'seed.iso');
  await ctx.resources.create({ kind: 'file', name: seed }, async () => {
    await createSeedIso({ path: seed, instanceId: ctx.plan.buildId, hostname: t.names.vm, user: { name: ctx.plan.access.sshUser, sshPublicKey: options.publicKey }, hostKey });
    return { id: seed };
  });

  const vm = await ctx.resources.create({ kind: 'vm', name: vmName }, async () => {
    const handle = await launchVm({
      name: vmName,
      workDir: work,
      rootDisk: root,
      dataDisks: [{ path: data, serial: ctx.plan.disks.data.deviceName ?? 'kiln-data' }],
      seedIso: seed,
      cpus: t.cpus,
      memoryMiB: t.memoryMiB,
      sshForward: { hostAddress: '127.0.0.1', hostPort: 0 },
      guestForwards: env.guestForwards,
      network: env.network,
      accel: env.accel,
      cpu: env.cpu,
      serialLogPath: ctx.paths.console,
      onConsoleLine: (line) => ctx.log.line(`console| ${line}`),
    });
    return { id: String(handle.pid), extra: { qmpSocket: handle.qmpSocket, pidFile: handle.pidFile, vmName }, handle };
  });
  ctx.log.line(`local: instance ${vmName} (pid ${vm.id}) booting from ${rootImage} with data disk ${data}`);
  return { access: { ...vm.handle.sshAddress, username: ctx.plan.access.sshUser, privateKey: options.privateKey, hostKeys: [hostKey.publicKey] }, vm: vm.handle };
}

function bootable(images: Artifact[], disk: 'root' | 'data'): string {
  const files = images.filter((a) => a.disk === disk && a.path && a.format && BOOTABLE_FORMATS.includes(a.format));
  files.sort((a, b) => BOOTABLE_FORMATS.indexOf(a.format ?? '') - BOOTABLE_FORMATS.indexOf(b.format ?? ''));
  const path = files[0]?.path;
  if (!path) throw new KilnError('VALIDATION', `no ${disk} image QEMU can boot among the artifacts (${BOOTABLE_FORMATS.join(', ')})`);
  return path;
}
