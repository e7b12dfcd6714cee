import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { InputError } from '../../../src/core/errors.js';
import { generateKeyPair, type SshKeyPair } from '../../../src/ssh/index.js';
import { createSeedIso, seedContent } from '../../../src/targets/local/seed.js';

let dir: string;
let userKey: SshKeyPair;
let hostKey: SshKeyPair;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-seed-test-'));
  // A comment with YAML-significant characters proves values are not spliced into the text.
  [userKey, hostKey] = [generateKeyPair('builder: #1 "quoted"'), generateKeyPair('host-key')];
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function isoFile(iso: string, name: string): Promise<string> {
  const { stdout } = await execa('isoinfo', ['-i', iso, '-R', '-x', `/${name}`]);
  return stdout;
}

describe('NoCloud seed ISO', () => {
  it('holds meta-data, user-data and network-config under the cidata label', async () => {
    const iso = path.join(dir, 'seed.iso');
    await createSeedIso({ path: iso, instanceId: 'kiln-run1-build', hostname: 'kiln-build', user: { name: 'kiln', sshPublicKey: userKey.publicKey }, hostKey });

    const { stdout: pvd } = await execa('isoinfo', ['-d', '-i', iso]);
    expect(pvd).toMatch(/Volume id:\s+cidata/);
    expect(pvd).toMatch(/Joliet/);
    const { stdout: listing } = await execa('isoinfo', ['-i', iso, '-R', '-f']);
    expect(listing.split('\n').sort()).toEqual(['/meta-data', '/network-config', '/user-data']);

    expect(parse(await isoFile(iso, 'meta-data'))).toEqual({ 'instance-id': 'kiln-run1-build', 'local-hostname': 'kiln-build' });

    const userDataText = await isoFile(iso, 'user-data');
    expect(userDataText.startsWith('#cloud-config\n')).toBe(true);
    const userData = parse(userDataText) as Record<string, unknown>;
    expect(userData.users).toEqual([
      { name: 'kiln', sudo: 'ALL=(ALL) NOPASSWD:ALL', shell: '/bin/bash', lock_passwd: true, ssh_authorized_keys: [userKey.publicKey] },
    ]);
    expect(userData.ssh_keys).toEqual({ ed25519_private: hostKey.privateKey, ed25519_public: hostKey.publicKey });
    expect(userData).not.toHaveProperty('ssh_pwauth');

    const network = parse(await isoFile(iso, 'network-config')) as { version: number; ethernets: Record<string, { match: { name: string }; dhcp4: boolean }> };
    expect(network.version).toBe(2);
    expect(Object.values(network.ethernets).map((e) => [e.match.name, e.dhcp4])).toEqual([['en*', true], ['eth*', true]]);
  });

  it('adds vendor-data when given, and only a #cloud-config', async () => {
    const iso = path.join(dir, 'vendor.iso');
    const vendorData = '#cloud-config\nruncmd:\n  - [true]\n';
    const options = { path: iso, instanceId: 'i-1', hostname: 'h', user: { name: 'kiln', sshPublicKey: userKey.publicKey }, hostKey };
    await createSeedIso({ ...options, vendorData });
    const { stdout: listing } = await execa('isoinfo', ['-i', iso, '-R', '-f']);
    expect(listing.split('\n').sort()).toEqual(['/meta-data', '/network-config', '/user-data', '/vendor-data']);
    expect(await isoFile(iso, 'vendor-data')).toBe(vendorData.trimEnd());
    await expect(createSeedIso({ ...options, vendorData: 'runcmd: []\n' })).rejects.toThrow(InputError);
  });

  it('rejects values that are not what cloud-init expects', () => {
    const base = { instanceId: 'i', hostname: 'h', user: { name: 'kiln', sshPublicKey: userKey.publicKey }, hostKey };
    expect(() => seedContent({ ...base, user: { ...base.user, name: 'bad\nname: x' } })).toThrow(InputError);
    expect(() => seedContent({ ...base, hostname: 'under_score' })).toThrow(InputError);
    expect(() => seedContent({ ...base, hostKey: { privateKey: hostKey.privateKey, publicKey: 'ssh-rsa AAAA' } })).toThrow(InputError);
  });
});
