/**
 * A customer's instance of the build's image, for `kiln validate` and `kiln build --validate`: the
 * build's own network recipe (a group of its own when the plan's is temporary, a VNet, an NSG letting
 * SSH in from the builder only, a public IP, a NIC) and a VM from the image with the size's VM size,
 * authorizing only the validation key. Every name is the build's with `-check` appended, so the
 * instance never meets the build VM it may run next to.
 *
 * Its data disk is the image's own (FromImage at the plan's LUN, deleted with the VM), or the
 * customer's managed disk given by id: attached at that LUN with deleteOption Detach and never
 * recorded, so neither deleting the VM nor undo touches it; the VM then boots from an image of the
 * OS disk alone (validation-source.ts explains why). `stop` finds the instance by the `instance`
 * fact and shuts it down through the guest.
 */
import type { DataDisk } from '@azure/arm-compute';
import { InputError } from '../../core/errors.js';
import type { AzureTargetPlan } from '../../definition/plan.js';
import type { BuildContext } from '../../pipeline/context.js';
import type { Artifact, InstanceOptions } from '../target.js';
import type { AzureClients } from './clients.js';
import { armGet } from './errors.js';
import { parseId, sameRegion } from './ids.js';
import { createNetwork, prepareGroup, publicAddress } from './network.js';
import { azurePlan, azureStep, type AzureStep } from './step.js';
import { osOnlyImage, pickImage } from './validation-source.js';
import { dataDiskLun, launchVm } from './vm.js';

export const VALIDATION_NAME_SUFFIX = '-check';
const INSTANCE_FACT = 'instance';
const DATA_DISK_FIELD = '--data-disk';

/** True once `launchValidationInstance` ran for this context (its state says so). */
export function isValidationInstance(ctx: BuildContext): boolean {
  return ctx.state.fact(INSTANCE_FACT) === 'validation';
}

/** The build's Azure plan with every temporary name, the group's too when it is temporary, suffixed. */
export function validationTargetPlan(t: AzureTargetPlan): AzureTargetPlan {
  const check = (name: string): string => `${name}${VALIDATION_NAME_SUFFIX}`;
  const n = t.names;
  return {
    ...t,
    resourceGroup: t.resourceGroup.temporary ? { name: check(t.resourceGroup.name), temporary: true } : t.resourceGroup,
    names: { ...n, vm: check(n.vm), vnet: check(n.vnet), nsg: check(n.nsg), publicIp: check(n.publicIp), nic: check(n.nic), osDisk: check(n.osDisk), dataDisk: check(n.dataDisk) },
  };
}

/**
 * The step of the validation instance: the build's context with the validation plan's names, and
 * its resources tagged with the validation's build id (the one its ledger entries carry).
 */
export function validationStep(ctx: BuildContext, c: AzureClients): AzureStep {
  const targetPlan = validationTargetPlan(azurePlan(ctx));
  return azureStep({ ...ctx, plan: { ...ctx.plan, targetPlan, tags: { ...ctx.plan.tags, 'kiln:build': ctx.plan.buildId } } }, c);
}

/** Launches the instance; returns its public address. */
export async function launchValidationInstance(s: AzureStep, images: Artifact[], options: InstanceOptions, sshSource: string): Promise<string> {
  const image = pickImage(images, s.location);
  const customerDisk = options.dataDisk === undefined ? undefined : await checkCustomerDisk(s, options.dataDisk);
  await s.ctx.state.setFacts({ [INSTANCE_FACT]: 'validation' });

  await prepareGroup(s);
  const net = await createNetwork(s, sshSource);
  const lun = dataDiskLun(s);
  const { data } = s.ctx.plan.disks;
  const dataDisk: DataDisk = customerDisk
    ? { lun, createOption: 'Attach', managedDisk: { id: customerDisk }, deleteOption: 'Detach' }
    : { lun, name: s.t.names.dataDisk, createOption: 'FromImage', ...(data.type ? { managedDisk: { storageAccountType: data.type } } : {}), deleteOption: 'Delete' };
  const imageId = customerDisk ? await osOnlyImage(s, image) : image.id;
  await launchVm(s, net.nicId, options.publicKey, { imageReference: { id: imageId }, dataDisks: [dataDisk] });
  const host = await publicAddress(s);
  s.log(`validation VM ${s.t.names.vm} (${s.t.vmSize}) from ${image.id} running at ${host}; data disk at LUN ${lun}: ${customerDisk ?? 'the image\'s own'}`);
  return host;
}

/** The customer's disk must be a managed disk of this subscription, in the instance's location. */
async function checkCustomerDisk(s: AzureStep, id: string): Promise<string> {
  const parsed = parseId(id);
  const name = parsed?.names[0];
  if (!parsed?.group || !name || !/\/providers\/Microsoft\.Compute\/disks\/[^/]+$/i.test(id)) {
    throw new InputError({ field: DATA_DISK_FIELD, message: `expected the ARM id of a managed disk (/subscriptions/<subscription>/resourceGroups/<group>/providers/Microsoft.Compute/disks/<name>), found ${JSON.stringify(id)}` });
  }
  if (parsed.subscription.toLowerCase() !== s.c.subscription.toLowerCase()) {
    throw new InputError({ field: DATA_DISK_FIELD, message: `disk ${id} is in subscription ${parsed.subscription}; the instance runs in ${s.c.subscription}` });
  }
  const disk = await armGet('reading the data disk', id, () => s.c.compute.disks.get(parsed.group as string, name, s.call));
  if (!disk) throw new InputError({ field: DATA_DISK_FIELD, message: `managed disk ${id} does not exist` });
  if (!sameRegion(disk.location, s.location)) {
    throw new InputError({ field: DATA_DISK_FIELD, message: `disk ${id} is in ${disk.location}; the instance runs in ${s.location} and can only attach a disk there` });
  }
  if (disk.managedBy) {
    throw new InputError({ field: DATA_DISK_FIELD, message: `disk ${id} is attached to ${disk.managedBy}; detach it (or delete that VM) first` });
  }
  return disk.id ?? id;
}
