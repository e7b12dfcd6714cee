/**
 * The build VM: launched from the marketplace image with a managed OS disk and an empty data disk at
 * the plan's LUN, both `deleteOption: Delete` (and the NIC too), so deleting the VM leaves no disk
 * behind; the disks it creates are still in the ledger, recorded before the VM so undo deletes the VM
 * first. A validation instance is launched the same way from another source (its image, and the
 * image's data disk or an attached one, which is never recorded).
 * Stopping = deallocate (a poller), then generalize (the provisioning scripts already deprovisioned
 * the guest agent), then a check of the instance view.
 */
import type { DataDisk, ImageReference, VirtualMachine } from '@azure/arm-compute';
import { KilnError } from '../../core/errors.js';
import { arm } from './errors.js';
import { KIND } from './ids.js';
import { required } from './network.js';
import type { AzureStep } from './step.js';

export function dataDiskLun(s: AzureStep): number {
  const lun = Number(s.ctx.plan.disks.data.deviceName ?? '0');
  if (!Number.isInteger(lun) || lun < 0 || lun > 63) throw new KilnError('INTERNAL', `data disk LUN '${s.ctx.plan.disks.data.deviceName}' is not 0..63`);
  return lun;
}

/** What a VM boots from: the image and its data disks (those without `managedDisk.id` are created with it). */
export interface VmSource {
  imageReference: ImageReference;
  dataDisks: DataDisk[];
}

/** The build's source: the plan's marketplace image and an empty data disk at the plan's LUN. */
export function baseImageSource(s: AzureStep): VmSource {
  const { data } = s.ctx.plan.disks;
  return {
    imageReference: { ...s.t.baseImage },
    dataDisks: [
      {
        lun: dataDiskLun(s),
        name: s.t.names.dataDisk,
        createOption: 'Empty',
        diskSizeGB: data.sizeGb,
        ...(data.type ? { managedDisk: { storageAccountType: data.type } } : {}),
        deleteOption: 'Delete',
      },
    ],
  };
}

export function vmSpec(s: AzureStep, nicId: string, publicKey: string, source: VmSource = baseImageSource(s)): VirtualMachine {
  const { t, ctx } = s;
  const { root } = ctx.plan.disks;
  const user = ctx.plan.access.sshUser;
  return {
    location: s.location,
    tags: s.tags,
    hardwareProfile: { vmSize: t.vmSize },
    storageProfile: {
      imageReference: source.imageReference,
      osDisk: {
        name: t.names.osDisk,
        createOption: 'FromImage',
        caching: 'ReadWrite',
        diskSizeGB: root.sizeGb,
        ...(root.type ? { managedDisk: { storageAccountType: root.type } } : {}),
        deleteOption: 'Delete',
      },
      dataDisks: source.dataDisks,
    },
    osProfile: {
      computerName: t.names.vm.slice(0, 64),
      adminUsername: user,
      linuxConfiguration: {
        disablePasswordAuthentication: true,
        ssh: { publicKeys: [{ path: `/home/${user}/.ssh/authorized_keys`, keyData: publicKey }] },
        provisionVMAgent: true,
      },
    },
    networkProfile: { networkInterfaces: [{ id: nicId, primary: true, deleteOption: 'Delete' }] },
  };
}

/**
 * Launches the VM. The intents of the disks it creates go into the ledger before the VM's (so undo
 * deletes the VM, which takes its disks, before it tries them), and get their ids from the VM's
 * answer. A disk it attaches (given by id) is not recorded: it is not the build's.
 */
export async function launchVm(s: AzureStep, nicId: string, publicKey: string, source: VmSource = baseImageSource(s)): Promise<VirtualMachine> {
  const { t, c } = s;
  let settle!: { resolve: (vm: VirtualMachine) => void; reject: (err: unknown) => void };
  const launched = new Promise<VirtualMachine>((resolve, reject) => (settle = { resolve, reject }));
  launched.catch(() => undefined); // the failure is thrown below; the disks' intents just stay
  const diskId = (vm: VirtualMachine, lun?: number): string =>
    required(lun === undefined ? vm.storageProfile?.osDisk?.managedDisk?.id : vm.storageProfile?.dataDisks?.find((d) => d.lun === lun)?.managedDisk?.id, 'disk id');
  const created = source.dataDisks.filter((d) => d.createOption !== 'Attach');
  const disks = [
    s.record(KIND.disk, t.names.osDisk, async () => ({ id: diskId(await launched) }), { extra: { disk: 'os', vm: t.names.vm } }),
    ...created.map((d) =>
      s.record(KIND.disk, required(d.name, `name of the data disk at LUN ${d.lun}`), async () => ({ id: diskId(await launched, d.lun) }), { extra: { disk: 'data', lun: String(d.lun), vm: t.names.vm } }),
    ),
  ];
  // The recorder runs each create once its intent is on disk; the ledger queue keeps that order.
  const disksRecorded = Promise.allSettled(disks);
  try {
    const vm = await s.record(KIND.vm, t.names.vm, async () => {
      const made = await arm('creating virtual machine', s.id('virtual-machine', t.names.vm), () => c.compute.virtualMachines.beginCreateOrUpdateAndWait(s.group, t.names.vm, vmSpec(s, nicId, publicKey, source), s.call));
      return { id: required(made.id, 'virtual machine id'), vm: made };
    });
    settle.resolve(vm.vm);
  } catch (err) {
    settle.reject(err);
    await disksRecorded;
    throw err;
  }
  for (const result of await disksRecorded) if (result.status === 'rejected') throw result.reason;
  return launched;
}

/** Power state and OS state codes of the VM, e.g. ['PowerState/deallocated', 'OSState/generalized']. */
export async function vmStates(s: AzureStep): Promise<string[]> {
  const name = s.t.names.vm;
  const vm = await arm('reading VM instance view', s.id('virtual-machine', name), () => s.c.compute.virtualMachines.get(s.group, name, { ...s.call, expand: 'instanceView' }));
  return (vm.instanceView?.statuses ?? []).map((x) => x.code ?? '').filter((code) => /^(PowerState|OSState)\//.test(code));
}

/** Deallocates (waiting on the poller), then generalizes the VM. */
export async function stopAndGeneralize(s: AzureStep): Promise<void> {
  const name = s.t.names.vm;
  s.log(`deallocating VM ${name}`);
  await arm('deallocating VM', s.id('virtual-machine', name), () => s.c.compute.virtualMachines.beginDeallocateAndWait(s.group, name, s.call));
  await arm('generalizing VM', s.id('virtual-machine', name), () => s.c.compute.virtualMachines.generalize(s.group, name, s.call));
  const states = await vmStates(s);
  if (!states.includes('PowerState/deallocated') || !states.includes('OSState/generalized')) {
    throw new KilnError('CLOUD', `VM ${name} is not deallocated and generalized after stop (states: ${states.join(', ') || 'none'})`, { resource: s.id('virtual-machine', name), code: 'UnexpectedVmState' });
  }
  s.log(`VM ${name} deallocated and generalized`);
}

/**
 * Shuts the VM down through the guest (power off without skipping the shutdown), for an instance
 * whose attached data disk outlives it; then checks that it is stopped.
 */
export async function powerOff(s: AzureStep): Promise<void> {
  const name = s.t.names.vm;
  s.log(`shutting VM ${name} down`);
  await arm('powering off VM', s.id('virtual-machine', name), () => s.c.compute.virtualMachines.beginPowerOffAndWait(s.group, name, { ...s.call, skipShutdown: false }));
  const states = await vmStates(s);
  if (!states.includes('PowerState/stopped')) {
    throw new KilnError('CLOUD', `VM ${name} is not stopped after power off (states: ${states.join(', ') || 'none'})`, { resource: s.id('virtual-machine', name), code: 'UnexpectedVmState' });
  }
  s.log(`VM ${name} shut down`);
}
