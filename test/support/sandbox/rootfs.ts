/**
 * The throwaway Debian 12 root the provisioning scripts run in during integration tests: a
 * debootstrap tree with the base image's package set (minus the kernel) plus what base.sh would
 * install, built once and cached under $KILN_CACHE_DIR/provision-rootfs/<key>/ (default
 * ~/.cache/kiln). The .deb files of base.sh's packages are kept beside it (debs/), so the QEMU test
 * can serve them to a guest as a flat apt repository and exercise base.sh's install path offline.
 *
 * The cached tree is only ever a read-only lower layer of an overlay (see sandbox.ts): tests never
 * write to it.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { done, notYet, waitFor } from '../../../src/core/wait.js';
import { debianRecipe } from '../../../src/targets/local/base/debian-recipe.js';
import { customizeRootfs, debootstrapRootfs, removeTree } from '../../../src/targets/local/base/rootfs.js';

/** Packages base.sh installs on Debian that the base image does not have (see provision/base.sh). */
export const BASE_SH_PACKAGES = ['nftables', 'jq', 'xfsprogs'] as const;
/** Not needed to run the scripts in a chroot, and slow to install. */
const SKIPPED = new Set(['linux-image-amd64', 'initramfs-tools']);
const ROOTFS_VERSION = 1;
const MIRROR = process.env.KILN_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';

export interface ProvisionRootfs {
  /** The root tree (use as an overlay lower dir only). */
  root: string;
  /** base.sh's packages and their dependencies as .deb files. */
  debsDir: string;
  key: string;
}

export function cacheDir(): string {
  return process.env.KILN_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'kiln');
}

/** Debian packages of the tree: the base image's, minus the kernel. */
/**
 * The base image's packages, less the kernel and less what base.sh installs: kiln's own base image
 * carries those for restricted builds, but the sandbox stands for a stock cloud image, where base.sh
 * has to install them.
 */
export function rootfsPackages(): string[] {
  const installedByBaseSh = new Set<string>(BASE_SH_PACKAGES);
  return debianRecipe().packages.filter((p) => !SKIPPED.has(p) && !installedByBaseSh.has(p));
}

export function rootfsKey(): string {
  const inputs = JSON.stringify({ ROOTFS_VERSION, packages: rootfsPackages(), extra: BASE_SH_PACKAGES, suite: debianRecipe().suite });
  return createHash('sha256').update(inputs).digest('hex').slice(0, 16);
}

// Runs in the chroot: fetch base.sh's packages (kept as .debs for the QEMU test), install them,
// then make the tree look like a cloud image at rest (as the base image recipe does).
const PREPARE = String.raw`set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
echo "deb $KILN_MIRROR bookworm main" > /etc/apt/sources.list
apt-get update -qq
apt-get clean
apt-get install -y -qq --no-install-recommends --download-only $KILN_EXTRA >/dev/null
mkdir -p /kiln-debs
cp /var/cache/apt/archives/*.deb /kiln-debs/
apt-get install -y -qq --no-install-recommends $KILN_EXTRA >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/*
: > /etc/machine-id
echo localhost > /etc/hostname
`;

export async function provisionRootfs(log: (line: string) => void = () => undefined): Promise<ProvisionRootfs> {
  const key = rootfsKey();
  const base = path.join(cacheDir(), 'provision-rootfs');
  const dir = path.join(base, key);
  const result = { root: path.join(dir, 'root'), debsDir: path.join(dir, 'debs'), key };
  if (await exists(path.join(dir, 'complete'))) return result;

  await mkdir(base, { recursive: true });
  // Test files run in parallel: one process builds, the others wait for its tree.
  const lock = path.join(base, `.lock-${key}`);
  while (!(await takeLock(lock))) {
    await waitFor(async () => ((await exists(path.join(dir, 'complete'))) || !(await lockHeld(lock)) ? done(undefined) : notYet('another process is building')), {
      what: `the provisioning root ${key} another test process is building`,
      timeoutMs: 30 * 60_000,
      initialDelayMs: 1000,
      maxDelayMs: 5000,
    });
    if (await exists(path.join(dir, 'complete'))) return result;
  }
  try {
    if (await exists(path.join(dir, 'complete'))) return result;
    await build(key, base, dir, log);
  } finally {
    await rm(lock, { force: true });
  }
  return result;
}

/** Creates the lock file with our pid; false when a live process holds it. */
async function takeLock(lock: string): Promise<boolean> {
  try {
    await writeFile(lock, `${process.pid}\n`, { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    if (await lockHeld(lock)) return false;
    await rm(lock, { force: true }); // left by a process that died
    return takeLock(lock);
  }
}

async function lockHeld(lock: string): Promise<boolean> {
  const pid = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function build(key: string, base: string, dir: string, log: (line: string) => void): Promise<void> {
  const work = await mkdtemp(path.join(base, `.build-${key}-`));
  try {
    const root = path.join(work, 'root');
    log(`provision rootfs ${key}: debootstrap bookworm from ${MIRROR}`);
    await debootstrapRootfs({ dir: root, suite: 'bookworm', mirror: MIRROR, packages: rootfsPackages(), onLog: log });
    // Name resolution for apt inside the chroot; removed again below.
    // (It may be a symlink into /run: replace it, never write through it.)
    await rm(path.join(root, 'etc/resolv.conf'), { force: true });
    await copyFile('/etc/resolv.conf', path.join(root, 'etc/resolv.conf'));
    await customizeRootfs(root, PREPARE, { KILN_MIRROR: MIRROR, KILN_EXTRA: BASE_SH_PACKAGES.join(' ') }, log);
    await rm(path.join(root, 'etc/resolv.conf'), { force: true });
    await symlink('../run/systemd/resolve/stub-resolv.conf', path.join(root, 'etc/resolv.conf'));
    await rename(path.join(root, 'kiln-debs'), path.join(work, 'debs'));
    await writeFile(path.join(work, 'complete'), `${new Date().toISOString()}\n`);
    try {
      await rename(work, dir);
    } catch (err) {
      // Another test process finished the same tree first: use theirs.
      if (!(await exists(path.join(dir, 'complete')))) throw err;
      await removeTree(work);
    }
  } catch (err) {
    await removeTree(work).catch(() => undefined);
    throw err;
  }
}

/** .deb files of base.sh's packages, for a flat apt repository. */
export async function baseDebs(rootfs: ProvisionRootfs): Promise<string[]> {
  return (await readdir(rootfs.debsDir)).filter((f) => f.endsWith('.deb')).map((f) => path.join(rootfs.debsDir, f));
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

