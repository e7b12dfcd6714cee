/**
 * Validation of a VM create request's parts, with ARM's error messages: the admin account and SSH
 * keys (reserved names, key format, the one key path Azure's Linux agent accepts) and the
 * managed disks (storage account type, deleteOption).
 */
import { armErrors } from '../errors.js';
import { arr, obj, str, type Json } from '../kinds.js';
import { STORAGE_ACCOUNT_TYPES } from './compute-common.js';

const RESERVED_USERS = new Set(['administrator', 'admin', 'user', 'user1', 'test', 'user2', 'test1', 'user3', 'admin1', '1', '123', 'a', 'actuser', 'adm', 'admin2', 'aspnet', 'backup', 'console', 'david', 'guest', 'john', 'owner', 'root', 'server', 'sql', 'support', 'support_388945a0', 'sys', 'test2', 'test3', 'user4', 'user5']);

export interface AdminAccount {
  user: string;
  keys: Json[];
  noPassword: boolean;
}

export function adminAccount(osProfile: Json): AdminAccount {
  const user = str(osProfile.adminUsername);
  if (!user) throw armErrors.invalidParameter("Required parameter 'adminUsername' is missing (null).", 'adminUsername');
  if (RESERVED_USERS.has(user.toLowerCase()) || !/^[a-z_][a-z0-9_.-]{0,63}$/i.test(user)) {
    throw armErrors.invalidParameter('The Admin Username specified is not allowed.', 'adminUsername');
  }
  const linux = obj(osProfile.linuxConfiguration);
  const keys = arr(obj(linux.ssh).publicKeys);
  const noPassword = linux.disablePasswordAuthentication === true;
  if (noPassword && keys.length === 0) {
    throw armErrors.invalidParameter('Authentication using either SSH or by user name and password must be enabled in Linux profile.', 'linuxConfiguration');
  }
  if (!noPassword && !str(osProfile.adminPassword)) {
    throw armErrors.invalidParameter("Required parameter 'adminPassword' is missing (null).", 'adminPassword');
  }
  for (const k of keys) {
    if (!/^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) \S+/.test(str(k.keyData) ?? '')) {
      throw armErrors.invalidParameter('The value of parameter linuxConfiguration.ssh.publicKeys.keyData is invalid.', 'linuxConfiguration.ssh.publicKeys.keyData');
    }
    const path = str(k.path) ?? `/home/${user}/.ssh/authorized_keys`;
    if (path !== `/home/${user}/.ssh/authorized_keys`) {
      throw armErrors.invalidParameter(
        `Destination path for SSH public keys is currently limited to its default value /home/${user}/.ssh/authorized_keys due to a known issue in Linux provisioning agent.`,
        'linuxConfiguration.ssh.publicKeys.path',
      );
    }
  }
  return { user, keys, noPassword };
}

export interface PlannedDisk {
  name: string;
  sizeGb: number;
  snapshot: string | undefined;
  lun: number | undefined;
  storageAccountType: string;
  deleteOption: 'Delete' | 'Detach';
}

export function planDisk(spec: Json, name: string, sizeGb: number, snapshot: string | undefined, lun?: number): PlannedDisk {
  const storageAccountType = str(obj(spec.managedDisk).storageAccountType) ?? 'Premium_LRS';
  if (!STORAGE_ACCOUNT_TYPES.includes(storageAccountType)) {
    throw armErrors.invalidParameter(`Storage account type '${storageAccountType}' is not supported.`, 'managedDisk.storageAccountType');
  }
  return { name, sizeGb, snapshot, lun, storageAccountType, deleteOption: deleteOptionOf(spec.deleteOption) };
}

export function deleteOptionOf(value: unknown): 'Delete' | 'Detach' {
  if (value === undefined) return 'Detach';
  if (value === 'Delete' || value === 'Detach') return value;
  throw armErrors.invalidParameter(`deleteOption '${String(value)}' is not valid; use Delete or Detach.`, 'deleteOption');
}

/** Compares image references: by id, or by publisher:offer:sku:version. */
export const imageKey = (r: Json): string =>
  str(r.id)?.toLowerCase() ?? [r.publisher, r.offer, r.sku, r.version].map((x) => String(x).toLowerCase()).join(':');
