import type { Command } from 'commander';
import { InputError } from '../core/errors.js';
import { buildBaseImage } from '../targets/local/base/build.js';
import { defaultCacheDir } from '../targets/local/driver.js';
import type { Output } from './output.js';

export function registerBase(program: Command, out: Output): void {
  const base = program.command('base').description('base images for the local target');
  base
    .command('build')
    .description('build a cloud-style base image (kernel, systemd, sshd, cloud-init) from a distribution mirror; cached')
    .argument('<distro>', 'debian-12')
    .option('-o, --output <path>', 'also copy the image here')
    .option('--mirror <url>', 'Debian mirror for debootstrap')
    .action(async (distro: string, flags: { output?: string; mirror?: string }) => {
      if (distro !== 'debian-12') throw new InputError({ field: 'distro', message: `expected debian-12, found ${JSON.stringify(distro)}` });
      const image = await buildBaseImage({ distro, output: flags.output, mirror: flags.mirror, cacheDir: defaultCacheDir(), onLog: (line) => out.line(line) });
      out.line(`${image.cached ? 'cached' : 'built'}: ${image.path}`);
    });
}
