import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../../src/core/errors.js';
import { describeBaseImage } from '../../../src/targets/local/base/describe.js';
import { createBlankDisk, createOverlay } from '../../../src/targets/local/disks.js';
import { imageInfo } from '../../../src/targets/local/image-info.js';

const GiB = 2 ** 30;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-disks-test-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('local disks', () => {
  it('creates a sparse blank qcow2 disk of the requested size', async () => {
    const disk = await createBlankDisk(path.join(dir, 'blank.qcow2'), 3);
    expect(disk.format).toBe('qcow2');
    expect(disk.virtualSizeBytes).toBe(3 * GiB);
    expect(disk.backingFile).toBeUndefined();
    expect(disk.actualSizeBytes).toBeLessThan(2 ** 20);
  });

  it('layers a grown overlay over a raw base without touching the base', async () => {
    const base = path.join(dir, 'base.raw');
    await execa('qemu-img', ['create', '-q', '-f', 'raw', base, '64M']);
    await execa('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 0 1M', base]);

    const overlayPath = path.join(dir, 'overlay.qcow2');
    const overlay = await createOverlay(base, overlayPath, 1);
    expect(overlay.backingFile).toBe(base);
    expect(overlay.backingFormat).toBe('raw');
    expect(overlay.virtualSizeBytes).toBe(GiB);

    await execa('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xa5 0 4k', overlayPath]);
    await execa('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0xa5 0 4k', '-c', 'read -P 0x5a 4k 4k', overlayPath]);
    // The write went to the overlay only.
    await execa('qemu-io', ['-f', 'raw', '-c', 'read -P 0x5a 0 4k', base]);
    const { stdout } = await execa('qemu-img', ['info', '--backing-chain', '--output=json', overlayPath]);
    expect((JSON.parse(stdout) as { filename: string }[]).map((i) => i.filename)).toEqual([overlayPath, base]);
  });

  it('keeps the base size when no size is given, and refuses to shrink', async () => {
    const base = path.join(dir, 'base2.qcow2');
    await createBlankDisk(base, 2);
    expect((await createOverlay(base, path.join(dir, 'same.qcow2'))).virtualSizeBytes).toBe(2 * GiB);
    await expect(createOverlay(base, path.join(dir, 'small.qcow2'), 1)).rejects.toThrow(InputError);
  });

  it('describes upstream base images by their real format', async () => {
    const raw = path.join(dir, 'upstream.img');
    await execa('qemu-img', ['create', '-q', '-f', 'raw', raw, '16M']);
    expect(await describeBaseImage(raw)).toMatchObject({ path: raw, format: 'raw', virtualSizeBytes: 16 * 2 ** 20 });

    const qcow = path.join(dir, 'upstream.qcow2');
    await createBlankDisk(qcow, 1);
    expect((await describeBaseImage(qcow)).format).toBe('qcow2');

    const vmdk = path.join(dir, 'upstream.vmdk');
    await execa('qemu-img', ['create', '-q', '-f', 'vmdk', vmdk, '16M']);
    await expect(describeBaseImage(vmdk)).rejects.toThrow(/vmdk/);
    await expect(describeBaseImage(path.join(dir, 'missing.qcow2'))).rejects.toThrow(InputError);

    const notAnImage = path.join(dir, 'text.txt');
    await writeFile(notAnImage, 'hello');
    expect((await imageInfo(notAnImage)).format).toBe('raw');
  });
});
