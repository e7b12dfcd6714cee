/**
 * A flat apt repository ("deb [trusted=yes] <url> ./") made of given .deb files: the files and a
 * Packages index built from each package's control fields (dpkg-deb -f) plus Filename, Size and
 * SHA256. The QEMU tests serve it to guests that cannot reach Debian's mirrors, so base.sh's
 * install path runs for real.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';

export async function writeFlatAptRepo(dir: string, debs: string[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  const stanzas: string[] = [];
  for (const deb of [...debs].sort()) {
    const name = path.basename(deb);
    await copyFile(deb, path.join(dir, name));
    const data = await readFile(deb);
    const control = (await execa('dpkg-deb', ['-f', deb])).stdout.trimEnd();
    stanzas.push(`${control}\nFilename: ./${name}\nSize: ${data.length}\nSHA256: ${createHash('sha256').update(data).digest('hex')}\n`);
  }
  await writeFile(path.join(dir, 'Packages'), stanzas.join('\n'));
}
