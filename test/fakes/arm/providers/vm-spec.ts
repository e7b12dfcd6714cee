/**
 * Validation of a VM create request's parts, with ARM's error messages: the admin account and SSH
 * keys (reserved names, key format, the one key path Azure's Linux agent accepts) and the
 * managed disks (storage account type, deleteOption), the data disks included:
 *  - Empty (diskSizeGB), FromImage (a data disk of the image at that lun) or Attach (an existing
 *    managed disk by `managedDisk.id`, in the VM's region, attached to no other VM: 409
 *    ConflictingUserInput otherwise; deleteOption Detach unless given);
 *  - with no dataDisks listed, the image's data disks come along (FromImage), as Azure adds them;
 *    once any is listed, every lun of the image must be listed with FromImage, else 400
 *    InvalidParameter "StorageProfile.dataDisks.lun does not have required value(s) for image
 *    specified in storage profile." (what ARM answers; an image's data disk cannot be left out or
 *    replaced by an attached disk).
 */
import { ArmError, armErrors } from '../errors.js';
import { arr, num, obj, str, type Core, type Json } from '../kinds.js';
import type { ResourceRecord } from '../state.js';
import { C, STORAGE_ACCOUNT_TYPES, type CapturedImage, type DiskInternal } from './compute-common.js';

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
  /** An existing disk attached as it is (createOption Attach). */
  existing?: ResourceRecord<DiskInternal>;
}

export const IMAGE_LUNS_MISSING = 'StorageProfile.dataDisks.lun does not have required value(s) for image specified in storage profile.';

/** The data disks of a create request, in the order listed, then the image's when none is listed. */
export function planDataDisks(core: Core, listed: Json[], image: CapturedImage, vm: { id: string; name: string; location: string }, suffix: () => string): PlannedDisk[] {
  const disks: PlannedDisk[] = [];
  for (const d of listed) {
    const lun = num(d.lun);
    if (lun === undefined || !Number.isInteger(lun) || lun < 0 || lun > 63 || disks.some((x) => x.lun === lun)) {
      throw armErrors.invalidParameter(`Data disk lun '${String(d.lun)}' is missing, out of range or used twice.`, 'dataDisks.lun');
    }
    const option = (str(d.createOption) ?? '').toLowerCase();
    const name = str(d.name) ?? `${vm.name}_disk${lun + 2}_${suffix()}`;
    if (option === 'empty') {
      const size = num(d.diskSizeGB);
      if (size === undefined || size < 1 || size > 32767) {
        throw armErrors.invalidParameter(`Data disk at lun ${lun} with createOption Empty needs diskSizeGB between 1 and 32767.`, 'dataDisks.diskSizeGB');
      }
      disks.push(planDisk(d, name, size, undefined, lun));
    } else if (option === 'fromimage') {
      const fromImage = image.data.find((x) => x.lun === lun);
      if (!fromImage) throw armErrors.invalidParameter(`The image has no data disk at lun ${lun}.`, 'dataDisks.lun');
      disks.push(planDisk(d, name, Math.max(num(d.diskSizeGB) ?? 0, fromImage.sizeGb), fromImage.snapshotId, lun));
    } else if (option === 'attach') {
      disks.push(attachDisk(core, d, lun, vm));
    } else {
      throw armErrors.notImplemented(`dataDisks createOption '${String(d.createOption)}'`);
    }
  }
  if (listed.length === 0) {
    for (const d of image.data) disks.push(planDisk({ createOption: 'FromImage' }, `${vm.name}_disk${d.lun + 2}_${suffix()}`, d.sizeGb, d.snapshotId, d.lun));
  } else if (image.data.some((x) => !disks.some((d) => d.lun === x.lun && d.snapshot === x.snapshotId))) {
    throw armErrors.invalidParameter(IMAGE_LUNS_MISSING, 'storageProfile');
  }
  return disks;
}

function attachDisk(core: Core, spec: Json, lun: number, vm: { id: string; location: string }): PlannedDisk {
  const id = str(obj(spec.managedDisk).id);
  if (!id) throw armErrors.invalidParameter("Required parameter 'managedDisk.id' is missing (null).", 'dataDisks.managedDisk.id');
  const disk = core.state.get<DiskInternal>(id);
  if (!disk || disk.type !== C.disk) throw new ArmError(404, 'NotFound', `Disk ${id} was not found. The entity was not found in this Azure location.`, { target: id });
  if (disk.location !== vm.location) {
    throw armErrors.invalidParameter(`Disk ${disk.id} is in region ${disk.location}; it cannot be attached to a VM in ${vm.location}.`, 'dataDisks.managedDisk.id');
  }
  if (!disk.internal.created) throw armErrors.operationNotAllowed(`Disk ${disk.id} cannot be attached while it is ${String(disk.properties.provisioningState)}.`);
  const owner = disk.managedBy ? core.state.get(disk.managedBy) : undefined;
  if (owner) {
    throw new ArmError(
      409,
      'ConflictingUserInput',
      `Cannot attach the disk ${disk.name} to VM ${vm.id} because it is already attached to VM ${owner.id}. A disk can be attached to only one VM at a time.`,
      { target: disk.id },
    );
  }
  const planned = planDisk({ ...spec, managedDisk: { storageAccountType: disk.sku?.name } }, disk.name, disk.internal.sizeGb, undefined, lun);
  return { ...planned, existing: disk };
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
