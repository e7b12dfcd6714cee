import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, sha256File, SshSession } from '../../../src/ssh/index.js';
import { loginFor, startSshd, type TestSshd } from '../../support/sshd.js';

const MB = 1024 * 1024;
const key = generateKeyPair();
const scratch = join(tmpdir(), `kiln-upload-${randomBytes(4).toString('hex')}`);
const bigFile = join(scratch, 'big.bin');
const midFile = join(scratch, 'mid.bin');
let bigSha: string;
let midSha: string;
let sshd: TestSshd;
const logs: string[] = [];

/** Writes `mb` MB of random data to `path` and returns its sha256, hashed as it is written. */
function randomFile(path: string, mb: number): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(4 * MB);
  for (let i = 0; i < mb / 4; i++) {
    randomFillSync(block);
    hash.update(block);
    writeSync(fd, block);
  }
  closeSync(fd);
  return hash.digest('hex');
}

beforeAll(async () => {
  mkdirSync(scratch, { recursive: true });
  bigSha = randomFile(bigFile, 200);
  midSha = randomFile(midFile, 64);
  sshd = await startSshd({ authorizedKeys: [key.publicKey] });
});
afterAll(async () => {
  await sshd?.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

function countSessions(): number {
  return sshd.log().split('\n').filter((l) => l.startsWith('Starting session:')).length;
}

async function open(): Promise<SshSession> {
  return SshSession.connect({ ...loginFor(sshd), privateKey: key.privateKey, timeoutMs: 20_000, onLog: (l) => logs.push(l) });
}

/** One line per entry: relative path, kind, permission bits and content hash (or link target). */
function treeDigest(root: string): string {
  const lines: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const rel = relative(root, path);
      const st = lstatSync(path);
      if (st.isSymbolicLink()) {
        lines.push(`${rel} link ${readlinkSync(path)}`);
      } else if (st.isDirectory()) {
        lines.push(`${rel} dir ${(st.mode & 0o777).toString(8)}`);
        walk(path);
      } else {
        lines.push(`${rel} file ${(st.mode & 0o777).toString(8)} ${createHash('sha256').update(readFileSync(path)).digest('hex')}`);
      }
    }
  };
  walk(root);
  return lines.join('\n');
}

describe('ssh uploads', () => {
  it('uploads a tree of a few hundred files as one tar stream, intact', async () => {
    const tree = join(scratch, 'tree');
    for (let i = 0; i < 400; i++) {
      const dir = join(tree, `d${i % 7}`, i % 3 === 0 ? 'deeper level' : 'ünï');
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `file ${i}${i % 5 === 0 ? " with 'quote'" : ''}.txt`);
      writeFileSync(file, randomBytes(i * 37), { mode: i % 4 === 0 ? 0o755 : 0o644 });
    }
    mkdirSync(join(tree, 'empty dir'));
    symlinkSync('d0/ünï', join(tree, 'a link'));
    const dest = join(scratch, 'remote', 'tree $(x)');
    const session = await open();
    const sessionsBefore = countSessions();
    try {
      const result = await session.uploadTree(tree, dest);
      expect(result.bytes).toBeGreaterThan(400 * 512);
      // One round trip: the server started exactly one session channel for the whole tree.
      expect(countSessions() - sessionsBefore).toBe(1);
    } finally {
      session.close();
    }
    const expected = treeDigest(tree);
    expect(expected.split('\n').length).toBeGreaterThan(400);
    expect(treeDigest(dest)).toBe(expected);
  });

  it('uploads a 200 MB file with the right sha256, as root through sudo, with a mode, into a directory only root may enter', async () => {
    mkdirSync(join(scratch, 'remote', 'sudo dir'), { recursive: true, mode: 0o700 });
    const dest = join(scratch, 'remote', 'sudo dir', 'big.bin');
    const session = await open();
    try {
      const result = await session.uploadFile(bigFile, dest, { sudo: true, mode: '0640' });
      expect(result.sha256).toBe(bigSha);
      expect(result.attempts).toBe(1);
      expect(result.startOffsets).toEqual([0]);
    } finally {
      session.close();
    }
    expect(await sha256File(dest)).toBe(bigSha);
    expect(statSync(dest).mode & 0o777).toBe(0o640);
    expect(statSync(dest).uid).toBe(0);
    expect(existsSync(`${dest}.kiln-part`)).toBe(false);
    // With sudo the partial file was in the login user's home, and nothing of it is left there.
    expect(existsSync(join(homedir(), '.kiln-upload'))).toBe(false);
  });

  it.each([false, true])('resumes an upload after the connection is dropped mid-transfer (sudo: %s)', async (sudo) => {
    const dest = join(scratch, 'remote', `dropped-${sudo}.bin`);
    const session = await open();
    let killed = 0;
    try {
      logs.length = 0;
      const result = await session.uploadFile(midFile, dest, {
        sudo,
        onProgress: (bytes) => {
          if (bytes > 24 * MB && killed === 0) killed = sshd.killSessions();
        },
      });
      expect(killed).toBeGreaterThan(0);
      expect(result.sha256).toBe(midSha);
      expect(result.attempts).toBe(2);
      expect(result.startOffsets[0]).toBe(0);
      expect(result.startOffsets[1]).toBeGreaterThan(24 * MB);
      expect(logs.join('\n')).toContain('reconnecting to resume');
    } finally {
      session.close();
    }
    expect(await sha256File(dest)).toBe(midSha);
  });

  it('completes an upload when sshd is stopped and restarted mid-transfer', async () => {
    const dest = join(scratch, 'remote', 'restarted.bin');
    const session = await open();
    let restarting: Promise<void> | undefined;
    try {
      const result = await session.uploadFile(midFile, dest, {
        onProgress: (bytes) => {
          if (bytes > 40 * MB && !restarting) restarting = sshd.restart();
        },
      });
      expect(restarting).toBeDefined();
      await restarting;
      expect(result.sha256).toBe(midSha);
      expect(result.attempts).toBeGreaterThanOrEqual(2);
      expect(result.startOffsets.at(-1)).toBeGreaterThan(40 * MB);
    } finally {
      session.close();
    }
    expect(await sha256File(dest)).toBe(midSha);
  });
});
