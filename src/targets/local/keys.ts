/**
 * OpenSSH ed25519 key pairs made with ssh-keygen: sshd reads host keys only in OpenSSH format, which
 * node:crypto does not write.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runTool } from './run.js';

export interface SshKeyPair {
  /** OpenSSH private key file text. */
  privateKey: string;
  /** One authorized_keys line: "ssh-ed25519 AAAA... comment". */
  publicKey: string;
}

export async function generateEd25519KeyPair(comment: string): Promise<SshKeyPair> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-key-'));
  try {
    const file = path.join(dir, 'key');
    await runTool('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
    const [privateKey, publicKey] = await Promise.all([readFile(file, 'utf8'), readFile(`${file}.pub`, 'utf8')]);
    return { privateKey, publicKey: publicKey.trim() };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
