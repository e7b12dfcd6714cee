/**
 * buildBaseImage: a cloud-style bootable qcow2 of a distribution, built with debootstrap and cached
 * by a hash of everything that shapes it. The image is built in a private work directory under the
 * cache and renamed into place at the end, so a cached file is always complete.
 */
import { createHash, randomUUID } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { InputError, KilnError } from '../../../core/errors.js';
import { runTool, type LogFn } from '../run.js';
import { debianRecipe, RECIPE_VERSION, type DebianRecipe } from './debian-recipe.js';
import { assembleBootableDisk, treeSizeBytes } from './disk.js';
import { customizeRootfs, debootstrapRootfs, removeTree } from './rootfs.js';

export type BaseDistro = 'debian-12';

export interface BuildBaseImageOptions {
  distro: BaseDistro;
  /** Where to copy the finished image; it always lives in the cache too. */
  output?: string;
  cacheDir: string;
  /** Debian mirror for debootstrap and the image's apt sources. */
  mirror?: string;
  onLog?: LogFn;
  signal?: AbortSignal;
}

export interface BaseImage {
  /** The output path if one was given, else the cached file. */
  path: string;
  cachePath: string;
  format: 'qcow2';
  distro: BaseDistro;
  /** Cache key: a hash of the distro, package list, customize script and recipe version. */
  key: string;
  /** True when the image came from the cache without building. */
  cached: boolean;
  virtualSizeBytes: number;
  rootUuid: string;
  builtAt: string;
}

interface CacheEntry {
  key: string;
  distro: BaseDistro;
  rootUuid: string;
  virtualSizeBytes: number;
  builtAt: string;
  packages: readonly string[];
  buildSeconds: number;
}

const DEFAULT_MIRROR = 'http://deb.debian.org/debian';
const SECURITY_MIRROR = 'http://deb.debian.org/debian-security';
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export function baseImageKey(recipe: DebianRecipe): string {
  const inputs = JSON.stringify({ recipeVersion: RECIPE_VERSION, ...recipe });
  return createHash('sha256').update(inputs).digest('hex').slice(0, 16);
}

export async function buildBaseImage(options: BuildBaseImageOptions): Promise<BaseImage> {
  if (options.distro !== 'debian-12') {
    throw new InputError({ field: 'distro', message: `unsupported base distro "${String(options.distro)}": only debian-12 can be built` });
  }
  const log = options.onLog ?? (() => undefined);
  const recipe = debianRecipe();
  const key = baseImageKey(recipe);
  const dir = path.join(options.cacheDir, 'base');
  const cachePath = path.join(dir, `${recipe.distro}-${key}.qcow2`);
  const metaPath = `${cachePath}.json`;
  await mkdir(dir, { recursive: true });

  let entry = await readEntry(metaPath, cachePath);
  const cached = entry !== undefined;
  if (entry) {
    log(`base image ${recipe.distro} ${key}: cached at ${cachePath}`);
  } else {
    entry = await build(recipe, key, dir, cachePath, options, log);
    await writeFile(`${metaPath}.tmp`, JSON.stringify(entry, null, 2));
    await rename(`${metaPath}.tmp`, metaPath);
  }

  let finalPath = cachePath;
  if (options.output && path.resolve(options.output) !== cachePath) {
    await copyFile(cachePath, options.output);
    finalPath = options.output;
  }
  return {
    path: finalPath,
    cachePath,
    format: 'qcow2',
    distro: recipe.distro,
    key,
    cached,
    virtualSizeBytes: entry.virtualSizeBytes,
    rootUuid: entry.rootUuid,
    builtAt: entry.builtAt,
  };
}

async function build(recipe: DebianRecipe, key: string, dir: string, cachePath: string, options: BuildBaseImageOptions, log: LogFn): Promise<CacheEntry> {
  const started = Date.now();
  const mirror = options.mirror ?? DEFAULT_MIRROR;
  const work = await mkdtemp(path.join(dir, `.build-${key}-`));
  const rootDir = path.join(work, 'root');
  const rawPath = path.join(work, 'disk.raw');
  const rootUuid = randomUUID();
  try {
    log(`base image ${recipe.distro} ${key}: debootstrap ${recipe.suite} from ${mirror}`);
    await debootstrapRootfs({ dir: rootDir, suite: recipe.suite, mirror, packages: recipe.packages, onLog: log, signal: options.signal });
    log('base image: customizing the root tree');
    await customizeRootfs(rootDir, recipe.customizeScript, {
      KILN_ROOT_UUID: rootUuid,
      KILN_MIRROR: mirror,
      KILN_SECURITY_MIRROR: SECURITY_MIRROR,
      KILN_SUITE: recipe.suite,
    }, log);

    const sizeBytes = diskSize(recipe.diskSizeGiB * GiB, await treeSizeBytes(rootDir));
    log(`base image: writing a ${sizeBytes / MiB} MiB bootable disk`);
    await assembleBootableDisk({ rootDir, rawPath, sizeBytes, rootUuid, onLog: log });
    await removeTree(rootDir);

    log('base image: compressing to qcow2');
    const partial = path.join(work, 'image.qcow2');
    await runTool('qemu-img', ['convert', '-c', '-f', 'raw', '-O', 'qcow2', rawPath, partial], { onLog: log, signal: options.signal });
    await rename(partial, cachePath);
    const buildSeconds = Math.round((Date.now() - started) / 1000);
    log(`base image ${recipe.distro} ${key}: built in ${buildSeconds}s`);
    return {
      key,
      distro: recipe.distro,
      rootUuid,
      virtualSizeBytes: sizeBytes,
      builtAt: new Date().toISOString(),
      packages: recipe.packages,
      buildSeconds,
    };
  } finally {
    // A failed cleanup must not hide why the build failed; it is only logged.
    await removeTree(work).catch((err: Error) => log(`base image: could not remove ${work}: ${err.message}`));
  }
}

/** The recipe's size, or more when the tree plus room for first-boot writes would not fit. */
function diskSize(recipeBytes: number, treeBytes: number): number {
  const needed = Math.ceil((treeBytes * 1.25 + 512 * MiB) / (256 * MiB)) * 256 * MiB;
  return Math.max(recipeBytes, needed);
}

async function readEntry(metaPath: string, imagePath: string): Promise<CacheEntry | undefined> {
  try {
    const entry = JSON.parse(await readFile(metaPath, 'utf8')) as CacheEntry;
    await stat(imagePath);
    return entry;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (err instanceof SyntaxError) return undefined;
    throw new KilnError('LOCAL', `cannot read the base image cache entry ${metaPath}: ${(err as Error).message}`, { file: metaPath }, { cause: err });
  }
}
