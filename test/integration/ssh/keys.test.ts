import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KilnError } from '../../../src/core/errors.js';
import { expectedFingerprint, fingerprint, generateKeyPair, parsePublicKeyLine } from '../../../src/ssh/index.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ssh keys', () => {
  it('generates ed25519 pairs that OpenSSH reads, with the fingerprint ssh-keygen computes', () => {
    const pair = generateKeyPair('kiln-test');
    expect(pair.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END OPENSSH PRIVATE KEY-----\n$/);
    expect(pair.publicKey).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]+=* kiln-test$/);
    const keyPath = join(dir, 'id');
    writeFileSync(keyPath, pair.privateKey, { mode: 0o600 });
    // ssh-keygen derives the public key from our private key file: it must be the same key.
    expect(execFileSync('ssh-keygen', ['-y', '-f', keyPath], { encoding: 'utf8' }).trim()).toBe(pair.publicKey);
    writeFileSync(`${keyPath}.pub`, `${pair.publicKey}\n`);
    const listed = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${keyPath}.pub`], { encoding: 'utf8' });
    expect(listed.split(' ')[1]).toBe(pair.fingerprint);
    expect(fingerprint(pair.publicKey)).toBe(pair.fingerprint);
  });

  it('makes a different key every time', () => {
    const a = generateKeyPair();
    const b = generateKeyPair();
    expect(a.publicKey).not.toBe(b.publicKey);
    expect(a.privateKey).not.toBe(b.privateKey);
  });

  it('accepts expected host keys as key lines or fingerprints, and rejects junk', () => {
    const pair = generateKeyPair();
    expect(expectedFingerprint(pair.publicKey)).toBe(pair.fingerprint);
    expect(expectedFingerprint(` ${pair.fingerprint} `)).toBe(pair.fingerprint);
    expect(() => parsePublicKeyLine('ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGmmcWdOftmidhnWaTygP5F/r9siG9f5/6b/oYqWE/3v')).toThrow(KilnError);
    expect(() => expectedFingerprint('not a key')).toThrow(/not an OpenSSH public key/);
  });
});
