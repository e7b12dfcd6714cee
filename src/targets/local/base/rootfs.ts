/**
 * Stage one of a base image: a root file system tree made by debootstrap and customized in a
 * chroot. debootstrap mounts /proc and /sys (and may bind /dev) inside the tree while it works, so
 * removal checks for leftover mounts first: a recursive delete must never walk into a host mount.
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { KilnError } from '../../../core/errors.js';
import { runTool, type LogFn } from '../run.js';

export interface RootfsOptions {
  dir: string;
  suite: string;
  mirror: string;
  packages: readonly string[];
  onLog?: LogFn;
  signal?: AbortSignal;
}

export async function debootstrapRootfs(options: RootfsOptions): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new KilnError('LOCAL', 'building a base image needs root (debootstrap and chroot)', { dir: options.dir });
  }
  await runTool(
    'debootstrap',
    ['--variant=minbase', '--components=main', `--include=${options.packages.join(',')}`, options.suite, options.dir, options.mirror],
    { onLog: options.onLog, signal: options.signal },
  );
  await assertNoMountsUnder(options.dir);
}

export async function customizeRootfs(dir: string, script: string, env: Record<string, string>, onLog?: LogFn): Promise<void> {
  await runTool('chroot', [dir, '/bin/bash', '-s'], {
    input: script,
    env: { ...env, PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
    onLog,
  });
}

/** Removes a build tree, unmounting whatever a failed debootstrap left mounted inside it. */
export async function removeTree(dir: string): Promise<void> {
  const mounts = await mountsUnder(dir);
  for (const mountPoint of mounts.reverse()) {
    await runTool('umount', ['--lazy', mountPoint]).catch(() => undefined);
  }
  await assertNoMountsUnder(dir);
  await rm(dir, { recursive: true, force: true });
}

async function assertNoMountsUnder(dir: string): Promise<void> {
  const left = await mountsUnder(dir);
  if (left.length > 0) {
    throw new KilnError('LOCAL', `file systems are still mounted inside ${dir}: ${left.join(', ')}`, { dir });
  }
}

async function mountsUnder(dir: string): Promise<string[]> {
  const root = path.resolve(dir);
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  return mountinfo
    .split('\n')
    .map((line) => unescapeMountPath(line.split(' ')[4] ?? ''))
    .filter((mountPoint) => mountPoint === root || mountPoint.startsWith(`${root}/`));
}

function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
