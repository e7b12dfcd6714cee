/**
 * The cloud-init NoCloud seed: an ISO labelled "cidata" holding meta-data, user-data and
 * network-config. It creates the build user with the builder's key and installs a host key the
 * builder generated, so the first SSH connection can verify the host instead of trusting it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { InputError } from '../../core/errors.js';
import type { SshKeyPair } from '../../ssh/index.js';
import { runTool } from './run.js';

export interface SeedOptions {
  /** Where to write the ISO. */
  path: string;
  instanceId: string;
  hostname: string;
  user: { name: string; sshPublicKey: string };
  /** ed25519 host key the guest's sshd will use. */
  hostKey: Pick<SshKeyPair, 'privateKey' | 'publicKey'>;
  /** Files cloud-init writes early in first boot (before network-online.target), e.g. test faults. */
  files?: { path: string; content: string }[];
}

export interface SeedContent {
  metaData: string;
  userData: string;
  networkConfig: string;
}

const YAML_OPTIONS = { lineWidth: 0 } as const;

export function seedContent(options: Omit<SeedOptions, 'path'>): SeedContent {
  checkSeedOptions(options);
  const metaData = stringify({ 'instance-id': options.instanceId, 'local-hostname': options.hostname }, YAML_OPTIONS);
  const userData = `#cloud-config\n${stringify(
    {
      users: [
        {
          name: options.user.name,
          sudo: 'ALL=(ALL) NOPASSWD:ALL',
          shell: '/bin/bash',
          lock_passwd: true,
          ssh_authorized_keys: [options.user.sshPublicKey.trim()],
        },
      ],
      disable_root: true,
      // No ssh_pwauth: setting it makes cloud-init rewrite sshd_config and restart sshd after SSH
      // is already up, cutting the builder's first connections. The user has no password anyway.
      ssh_deletekeys: true,
      ssh_keys: {
        ed25519_private: options.hostKey.privateKey.endsWith('\n') ? options.hostKey.privateKey : `${options.hostKey.privateKey}\n`,
        ed25519_public: options.hostKey.publicKey.trim(),
      },
      ...(options.files?.length ? { write_files: options.files.map((f) => ({ path: f.path, content: f.content, permissions: '0644' })) } : {}),
    },
    YAML_OPTIONS,
  )}`;
  // Interface names differ by machine type and distro, so match both naming schemes.
  const networkConfig = stringify(
    {
      version: 2,
      ethernets: {
        en: { match: { name: 'en*' }, dhcp4: true },
        eth: { match: { name: 'eth*' }, dhcp4: true },
      },
    },
    YAML_OPTIONS,
  );
  return { metaData, userData, networkConfig };
}

export async function createSeedIso(options: SeedOptions): Promise<SeedContent & { path: string }> {
  const content = seedContent(options);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-seed-'));
  try {
    await Promise.all([
      writeFile(path.join(dir, 'meta-data'), content.metaData),
      writeFile(path.join(dir, 'user-data'), content.userData),
      writeFile(path.join(dir, 'network-config'), content.networkConfig),
    ]);
    await runTool('genisoimage', ['-quiet', '-output', path.resolve(options.path), '-volid', 'cidata', '-joliet', '-rock', 'user-data', 'meta-data', 'network-config'], { cwd: dir });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { path: options.path, ...content };
}

function checkSeedOptions(options: Omit<SeedOptions, 'path'>): void {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(options.user.name)) {
    throw new InputError({ field: 'user.name', message: `"${options.user.name}" is not a valid Linux user name` });
  }
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(options.hostname)) {
    throw new InputError({ field: 'hostname', message: `"${options.hostname}" is not a valid host name` });
  }
  if (!options.hostKey.publicKey.trim().startsWith('ssh-ed25519 ')) {
    throw new InputError({ field: 'hostKey.publicKey', message: 'the host key must be an ed25519 key' });
  }
  if (!options.hostKey.privateKey.includes('OPENSSH PRIVATE KEY')) {
    throw new InputError({ field: 'hostKey.privateKey', message: 'the host private key must be in OpenSSH format' });
  }
}
