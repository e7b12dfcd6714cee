/** Key pairs: ImportKeyPair (OpenSSH ed25519 or RSA public keys), DescribeKeyPairs, DeleteKeyPair. */
import { createHash, createPublicKey } from 'node:crypto';
import { Ec2Error } from '../errors.js';
import { applyFilters, type FilterFields } from '../filters.js';
import type { KeyPairRecord } from '../model.js';
import { copyTags, tagSetXml, tagSpecifications, type ActionHandler } from './common.js';

const BAD_FORMAT = () => new Ec2Error('InvalidKeyPair.Format', 'Key is not in valid OpenSSH public key format');

/** Reads the length-prefixed fields of an SSH wire-format key blob. */
function sshFields(blob: Buffer): Buffer[] {
  const fields: Buffer[] = [];
  let offset = 0;
  while (offset < blob.length) {
    if (offset + 4 > blob.length) throw BAD_FORMAT();
    const length = blob.readUInt32BE(offset);
    offset += 4;
    if (offset + length > blob.length) throw BAD_FORMAT();
    fields.push(blob.subarray(offset, offset + length));
    offset += length;
  }
  return fields;
}

/** Parses an OpenSSH public key line and computes the fingerprint EC2 reports for imports. */
export function parsePublicKey(line: string): { keyType: 'ed25519' | 'rsa'; fingerprint: string; normalized: string } {
  const [type, data] = line.trim().split(/\s+/);
  if (!type || !data || !/^[A-Za-z0-9+/]+={0,2}$/.test(data)) throw BAD_FORMAT();
  const blob = Buffer.from(data, 'base64');
  const fields = sshFields(blob);
  if (fields[0]?.toString('latin1') !== type) throw BAD_FORMAT();
  if (type === 'ssh-ed25519') {
    if (fields.length !== 2 || fields[1]?.length !== 32) throw BAD_FORMAT();
    // Imported ED25519: base64-encoded SHA-256 digest of the key blob (OpenSSH's fingerprint).
    return {
      keyType: 'ed25519',
      fingerprint: createHash('sha256').update(blob).digest('base64'),
      normalized: `${type} ${data}`,
    };
  }
  if (type === 'ssh-rsa') {
    const [, e, n] = fields;
    if (fields.length !== 3 || !e || !n) throw BAD_FORMAT();
    const strip = (b: Buffer) => (b[0] === 0 ? b.subarray(1) : b);
    const bits = strip(n).length * 8;
    if (bits < 1024 || bits > 4096) {
      throw new Ec2Error('InvalidKeyPair.Format', `Invalid RSA key length ${bits}; expected 1024 to 4096 bits`);
    }
    const der = createPublicKey({
      key: { kty: 'RSA', n: strip(n).toString('base64url'), e: strip(e).toString('base64url') },
      format: 'jwk',
    }).export({ type: 'spki', format: 'der' });
    // Imported RSA: MD5 of the DER public key, as colon-separated hex (RFC 4716 section 4).
    const md5 = createHash('md5').update(der).digest('hex');
    return { keyType: 'rsa', fingerprint: md5.match(/../g)?.join(':') ?? md5, normalized: `${type} ${data}` };
  }
  throw BAD_FORMAT();
}

const KEY_FILTERS: FilterFields<KeyPairRecord> = {
  'key-pair-id': (k) => k.id,
  'key-name': (k) => k.name,
  fingerprint: (k) => k.fingerprint,
  'key-type': (k) => k.keyType,
};

const importKeyPair: ActionHandler = (ctx) => {
  const { state, region, params } = ctx;
  const name = params.required('KeyName');
  const material = params.required('PublicKeyMaterial');
  if (name.length > 255 || !/^[\x20-\x7e]+$/.test(name)) {
    throw new Ec2Error('InvalidParameterValue', `Value (${name}) for parameter keyName is invalid.`);
  }
  if ([...region.keyPairs.values()].some((k) => k.name === name)) {
    throw new Ec2Error('InvalidKeyPair.Duplicate', `The keypair '${name}' already exists.`);
  }
  const parsed = parsePublicKey(Buffer.from(material, 'base64').toString('utf8'));
  const tags = tagSpecifications(params, ['key-pair']);
  const key: KeyPairRecord = {
    id: state.newId('key'),
    name,
    fingerprint: parsed.fingerprint,
    keyType: parsed.keyType,
    publicKey: `${parsed.normalized} ${name}`,
    createTime: new Date(),
    tags: copyTags(tags.get('key-pair')),
  };
  region.keyPairs.set(key.id, key);
  return { keyFingerprint: key.fingerprint, keyName: key.name, keyPairId: key.id, tagSet: tagSetXml(key.tags) };
};

const describeKeyPairs: ActionHandler = (ctx) => {
  const { region, params } = ctx;
  let keys = [...region.keyPairs.values()];
  const names = params.strings('KeyName');
  const ids = params.strings('KeyPairId');
  for (const name of names) {
    if (!keys.some((k) => k.name === name)) {
      throw new Ec2Error('InvalidKeyPair.NotFound', `The key pair '${name}' does not exist`);
    }
  }
  for (const id of ids) {
    if (!region.keyPairs.has(id)) throw new Ec2Error('InvalidKeyPair.NotFound', `The key pair ID '${id}' does not exist`);
  }
  if (names.length) keys = keys.filter((k) => names.includes(k.name));
  if (ids.length) keys = keys.filter((k) => ids.includes(k.id));
  keys = applyFilters(keys, params.structs('Filter'), KEY_FILTERS);
  const withPublic = params.bool('IncludePublicKey') === true;
  return {
    keySet: keys.map((k) => ({
      keyPairId: k.id,
      keyType: k.keyType,
      tagSet: tagSetXml(k.tags),
      publicKey: withPublic ? k.publicKey : undefined,
      createTime: k.createTime,
      keyName: k.name,
      keyFingerprint: k.fingerprint,
    })),
  };
};

const deleteKeyPair: ActionHandler = (ctx) => {
  const { region, params } = ctx;
  const name = params.str('KeyName');
  const id = params.str('KeyPairId');
  if (!name && !id) throw new Ec2Error('MissingParameter', 'The request must contain the parameter KeyName or KeyPairId');
  if (id && !region.keyPairs.has(id)) {
    throw new Ec2Error('InvalidKeyPair.NotFound', `The key pair ID '${id}' does not exist`);
  }
  // Deleting a key pair by a name that does not exist succeeds, as in EC2.
  const key = id ? region.keyPairs.get(id) : [...region.keyPairs.values()].find((k) => k.name === name);
  if (key) region.keyPairs.delete(key.id);
  return { return: true, keyPairId: key?.id };
};

export const keyPairActions: Record<string, ActionHandler> = {
  ImportKeyPair: importKeyPair,
  DescribeKeyPairs: describeKeyPairs,
  DeleteKeyPair: deleteKeyPair,
};
