/**
 * SSH upload benchmark: `npx tsx bench/ssh-upload.ts [--mb 200] [--files 2000] [--runs 3]`.
 *
 * Starts the test sshd on 127.0.0.1, then uploads the same random file with kiln's uploadFile
 * (parallel SFTP + remote sha256 check + rename) and with OpenSSH scp (no check), and a tree of
 * small files with kiln's uploadTree (one tar stream) and with `scp -r`. Prints the best and median
 * of each and the ratios. Needs openssh-server and openssh-client (scp, ssh-keygen).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generateKeyPair, sha256File, SshSession } from '../src/ssh/index.js';
import { loginFor, startSshd } from '../test/support/sshd.js';
import { writeRandomFile } from './random-file.js';

const run = promisify(execFile);

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

const MB = 1024 * 1024;
const sizeMb = arg('mb', 200);
const fileCount = arg('files', 2000);
const runs = arg('runs', 3);

async function time(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function stats(seconds: number[]): { best: number; median: number } {
  const sorted = [...seconds].sort((a, b) => a - b);
  return { best: sorted[0] ?? NaN, median: sorted[Math.floor(sorted.length / 2)] ?? NaN };
}

const fmt = (n: number, digits = 1): string => n.toFixed(digits);

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-ssh-'));
  const key = generateKeyPair('kiln-bench');
  const keyPath = join(dir, 'id_ed25519');
  writeFileSync(keyPath, key.privateKey, { mode: 0o600 });
  const sshd = await startSshd({ authorizedKeys: [key.publicKey] });
  const session = await SshSession.connect({ ...loginFor(sshd), privateKey: key.privateKey, timeoutMs: 30_000 });
  const scpBase = ['-q', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-i', keyPath, '-P', String(sshd.port)];
  const remote = (path: string): string => `${sshd.user}@${sshd.host}:${path}`;
  try {
    // The big file: random, so nothing compresses or dedups.
    const big = join(dir, 'big.bin');
    const sha = writeRandomFile(big, sizeMb * MB);

    // The tree: ~fileCount small files (0-4 KiB) in nested directories.
    const tree = join(dir, 'tree');
    for (let i = 0; i < fileCount; i++) {
      const sub = join(tree, `d${i % 20}`, `e${i % 7}`);
      mkdirSync(sub, { recursive: true });
      writeFileSync(join(sub, `f${i}.txt`), randomBytes(i % 4096));
    }

    // What one remote command costs here (channel + login shell): uploadFile runs two of them.
    const execs: number[] = [];
    for (let r = 0; r < 5; r++) execs.push(await time(() => session.run('true', { onLine: () => {} })));

    const kiln: number[] = [];
    const kilnTransfer: number[] = [];
    const scp: number[] = [];
    for (let r = 0; r < runs; r++) {
      const dest = join(dir, `dest-kiln-${r}.bin`);
      kiln.push(
        await time(async () => {
          const result = await session.uploadFile(big, dest);
          if (result.sha256 !== sha) throw new Error('kiln upload: wrong sha256');
          kilnTransfer.push(result.transferMs / 1000);
        }),
      );
      const scpDest = join(dir, `dest-scp-${r}.bin`);
      scp.push(await time(() => run('scp', [...scpBase, big, remote(scpDest)])));
      if ((await sha256File(scpDest)) !== sha) throw new Error('scp upload: wrong sha256');
      rmSync(dest);
      rmSync(scpDest);
    }

    const treeKiln: number[] = [];
    const treeScp: number[] = [];
    for (let r = 0; r < runs; r++) {
      treeKiln.push(await time(() => session.uploadTree(tree, join(dir, `tree-kiln-${r}`))));
      treeScp.push(await time(() => run('scp', [...scpBase, '-r', tree, remote(join(dir, `tree-scp-${r}`))])));
    }

    const k = stats(kiln);
    const kt = stats(kilnTransfer);
    const e = stats(execs);
    const s = stats(scp);
    const tk = stats(treeKiln);
    const ts = stats(treeScp);
    console.log(`ssh upload benchmark on 127.0.0.1 (${runs} runs each; best / median)`);
    console.log(`  file ${sizeMb} MB  kiln uploadFile (SFTP x32 + remote sha256 + rename): ${fmt(sizeMb / k.best)} / ${fmt(sizeMb / k.median)} MB/s`);
    console.log(`  file ${sizeMb} MB  of which the SFTP transfer alone:                     ${fmt(sizeMb / kt.best)} / ${fmt(sizeMb / kt.median)} MB/s`);
    console.log(`  file ${sizeMb} MB  OpenSSH scp (no verification):                      ${fmt(sizeMb / s.best)} / ${fmt(sizeMb / s.median)} MB/s`);
    console.log(`  file speed ratio kiln/scp: ${fmt(s.best / k.best, 2)} (best), ${fmt(s.median / k.median, 2)} (median); transfer alone ${fmt(s.best / kt.best, 2)} / ${fmt(s.median / kt.median, 2)}`);
    console.log(`  one remote command round trip here: ${fmt(e.best * 1000, 0)} / ${fmt(e.median * 1000, 0)} ms`);
    console.log(`  tree ${fileCount} files  kiln uploadTree (one tar stream): ${fmt(tk.best, 2)} / ${fmt(tk.median, 2)} s`);
    console.log(`  tree ${fileCount} files  scp -r:                           ${fmt(ts.best, 2)} / ${fmt(ts.median, 2)} s`);
  } finally {
    session.close();
    await sshd.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
