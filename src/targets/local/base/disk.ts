/**
 * Stage two of a base image: a BIOS-bootable raw disk made from a root tree without loop devices
 * or mounts. Layout: MBR with one partition at 1 MiB; GRUB's boot.img in the MBR code area and its
 * core.img in the gap after it; an ext4 file system written by mke2fs straight into the partition.
 */
import { access, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { KilnError } from '../../../core/errors.js';
import { runTool, type LogFn } from '../run.js';

const SECTOR = 512;
const PARTITION_START_SECTOR = 2048;
const PARTITION_OFFSET = PARTITION_START_SECTOR * SECTOR;
const FS_BLOCK = 4096;
/** Bytes of the MBR that hold boot code; the disk signature and partition table follow. */
const MBR_CODE_BYTES = 440;
/** boot.img's "jmp" over the boot-drive check; two NOPs make it trust only hard disks (as grub-install does). */
const BOOT_DRIVE_CHECK_OFFSET = 0x66;
const GRUB_PC_DIR = '/usr/lib/grub/i386-pc';
const GRUB_MODULES = ['biosdisk', 'part_msdos', 'ext2', 'search', 'search_fs_uuid', 'normal', 'linux', 'configfile', 'echo', 'test'];

export interface DiskLayoutOptions {
  rootDir: string;
  rawPath: string;
  sizeBytes: number;
  rootUuid: string;
  onLog?: LogFn;
}

export async function assembleBootableDisk(options: DiskLayoutOptions): Promise<void> {
  const { rawPath, sizeBytes, rootUuid, onLog } = options;
  if (sizeBytes % FS_BLOCK !== 0) throw new KilnError('INTERNAL', `disk size ${sizeBytes} is not a multiple of ${FS_BLOCK}`);
  await access(path.join(GRUB_PC_DIR, 'boot.img')).catch(() => {
    throw new KilnError('LOCAL', `GRUB BIOS images not found in ${GRUB_PC_DIR}: install the grub-pc-bin package`);
  });

  const file = await open(rawPath, 'w');
  await file.truncate(sizeBytes);
  await file.close();

  await runTool('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', rawPath], {
    input: `label: dos\nunit: sectors\nstart=${PARTITION_START_SECTOR}, type=83, bootable\n`,
    onLog,
  });

  const fsBlocks = (sizeBytes - PARTITION_OFFSET) / FS_BLOCK;
  await runTool(
    'mke2fs',
    ['-F', '-q', '-t', 'ext4', '-b', String(FS_BLOCK), '-L', 'rootfs', '-U', rootUuid,
      '-E', `offset=${PARTITION_OFFSET},nodiscard,root_owner=0:0`, '-d', options.rootDir, rawPath, String(fsBlocks)],
    { onLog },
  );

  await installGrub(rawPath, rootUuid, onLog);
}

/** What grub-install would do for a BIOS disk, done by hand on an image file. */
async function installGrub(rawPath: string, rootUuid: string, onLog?: LogFn): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'kiln-grub-'));
  try {
    const earlyCfg = path.join(work, 'early.cfg');
    const coreImg = path.join(work, 'core.img');
    await writeFile(earlyCfg, `search --no-floppy --fs-uuid --set=root ${rootUuid}\nset prefix=($root)/boot/grub\n`);
    await runTool('grub-mkimage', ['-O', 'i386-pc', '-d', GRUB_PC_DIR, '-c', earlyCfg, '-p', '/boot/grub', '-o', coreImg, ...GRUB_MODULES], { onLog });

    const core = await readFile(coreImg);
    const gap = PARTITION_OFFSET - SECTOR;
    if (core.length > gap) throw new KilnError('LOCAL', `GRUB core.img is ${core.length} bytes, more than the ${gap} bytes before the partition`);
    const boot = Buffer.from(await readFile(path.join(GRUB_PC_DIR, 'boot.img')));
    boot[BOOT_DRIVE_CHECK_OFFSET] = 0x90;
    boot[BOOT_DRIVE_CHECK_OFFSET + 1] = 0x90;

    // core.img's first sector already lists sector 2 onwards as the rest of itself, and boot.img
    // loads sector 1 by default, so both go in unpatched except for the drive check above.
    const disk = await open(rawPath, 'r+');
    try {
      await disk.write(boot, 0, MBR_CODE_BYTES, 0);
      await disk.write(core, 0, core.length, SECTOR);
    } finally {
      await disk.close();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Bytes the root tree needs, measured with du (apparent sizes would miss block rounding). */
export async function treeSizeBytes(dir: string): Promise<number> {
  const { stdout } = await runTool('du', ['-s', '-x', '--block-size=1', dir]);
  const bytes = Number(stdout.split(/\s/)[0]);
  if (!Number.isFinite(bytes)) throw new KilnError('LOCAL', `cannot read the size of ${dir} from du: ${stdout}`);
  return bytes;
}

