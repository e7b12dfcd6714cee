/**
 * SSH keys in OpenSSH formats, made in-process with node:crypto: a fresh ed25519 key pair (private
 * key as `-----BEGIN OPENSSH PRIVATE KEY-----`, which ssh2 and OpenSSH read, and the public key as an
 * `ssh-ed25519 AAAA... comment` line), and SHA256 fingerprints as `ssh-keygen -lf` prints them.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { KilnError } from '../core/errors.js';

export interface SshKeyPair {
  /** OpenSSH private key (PEM-armoured `openssh-key-v1`, unencrypted). Keep it secret. */
  privateKey: string;
  /** One line: `ssh-ed25519 AAAA... comment`, as authorized_keys wants it. */
  publicKey: string;
  /** `SHA256:...` of the public key. */
  fingerprint: string;
}

const KEY_TYPE = 'ssh-ed25519';
const AUTH_MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');

/** Generates a fresh ed25519 key pair in OpenSSH formats. */
export function generateKeyPair(comment = 'kiln'): SshKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pubJwk = publicKey.export({ format: 'jwk' });
  const privJwk = privateKey.export({ format: 'jwk' });
  if (!pubJwk.x || !privJwk.d) throw new KilnError('INTERNAL', 'node:crypto returned an ed25519 key without its JWK parts');
  const pub = Buffer.from(pubJwk.x, 'base64url');
  const seed = Buffer.from(privJwk.d, 'base64url');
  const blob = publicKeyBlob(pub);

  const check = randomBytes(4);
  const parts = [check, check, sshString(KEY_TYPE), sshString(pub), sshString(Buffer.concat([seed, pub])), sshString(comment)];
  let secret = Buffer.concat(parts);
  // Pad to the cipher block size (8 for "none") with 1, 2, 3, ...
  const padLength = (8 - (secret.length % 8)) % 8;
  secret = Buffer.concat([secret, Buffer.from(Array.from({ length: padLength }, (_, i) => i + 1))]);

  const body = Buffer.concat([
    AUTH_MAGIC,
    sshString('none'), // cipher
    sshString('none'), // kdf
    sshString(Buffer.alloc(0)), // kdf options
    uint32(1), // number of keys
    sshString(blob),
    sshString(secret),
  ]);
  const base64 = body.toString('base64').replace(/.{1,70}/g, '$&\n');
  return {
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${base64}-----END OPENSSH PRIVATE KEY-----\n`,
    publicKey: `${KEY_TYPE} ${blob.toString('base64')}${comment ? ` ${comment}` : ''}`,
    fingerprint: fingerprintOfBlob(blob),
  };
}

/** `SHA256:<base64 without padding>` of a public key's wire blob, as OpenSSH prints it. */
export function fingerprintOfBlob(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** SHA256 fingerprint of an OpenSSH public key line (`ssh-ed25519 AAAA... comment`). */
export function fingerprint(publicKeyLine: string): string {
  return fingerprintOfBlob(parsePublicKeyLine(publicKeyLine).blob);
}

/** Splits and checks an OpenSSH public key line; the blob's inner type must match the line's. */
export function parsePublicKeyLine(line: string): { type: string; blob: Buffer; comment: string } {
  const [type, data, ...rest] = line.trim().split(/\s+/);
  if (!type || !data || !/^[A-Za-z0-9+/]+={0,2}$/.test(data)) {
    throw new KilnError('INPUT', `not an OpenSSH public key line: "${line.slice(0, 40)}..."`);
  }
  const blob = Buffer.from(data, 'base64');
  let inner: string | undefined;
  try {
    inner = readString(blob, 0).toString('latin1');
  } catch {
    throw new KilnError('INPUT', `not an OpenSSH public key line: "${line.slice(0, 40)}..."`);
  }
  if (inner !== type) throw new KilnError('INPUT', `public key line says ${type} but holds a ${inner} key`);
  return { type, blob, comment: rest.join(' ') };
}

/**
 * Normalizes an expected host key, given as an OpenSSH public key line or as a `SHA256:` fingerprint
 * (as `ssh-keygen -lf` prints it), to its SHA256 fingerprint.
 */
export function expectedFingerprint(hostKey: string): string {
  const trimmed = hostKey.trim();
  if (/^SHA256:[A-Za-z0-9+/]{43}=?$/.test(trimmed)) return trimmed.replace(/=$/, '');
  return fingerprint(trimmed);
}

/**
 * The public key fingerprint inside an unencrypted or encrypted `openssh-key-v1` private key (the
 * public part is stored in the clear), or undefined for other formats. Used to name the key in errors.
 */
export function privateKeyFingerprint(privateKey: string): string | undefined {
  const match = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]+?)-----END OPENSSH PRIVATE KEY-----/.exec(privateKey);
  if (!match?.[1]) return undefined;
  try {
    const body = Buffer.from(match[1].replace(/\s+/g, ''), 'base64');
    if (!body.subarray(0, AUTH_MAGIC.length).equals(AUTH_MAGIC)) return undefined;
    let offset = AUTH_MAGIC.length;
    for (let i = 0; i < 3; i++) offset += 4 + body.readUInt32BE(offset); // cipher, kdf, kdf options
    offset += 4; // number of keys
    return fingerprintOfBlob(readString(body, offset));
  } catch {
    return undefined;
  }
}

function publicKeyBlob(pub: Buffer): Buffer {
  return Buffer.concat([sshString(KEY_TYPE), sshString(pub)]);
}

function sshString(value: string | Buffer): Buffer {
  const data = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return Buffer.concat([uint32(data.length), data]);
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function readString(buf: Buffer, offset: number): Buffer {
  if (offset + 4 > buf.length) throw new RangeError('truncated SSH string');
  const length = buf.readUInt32BE(offset);
  if (offset + 4 + length > buf.length) throw new RangeError('truncated SSH string');
  return buf.subarray(offset + 4, offset + 4 + length);
}
