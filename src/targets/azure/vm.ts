/**
 * The build VM: launched from the marketplace image with a managed OS disk and an empty data disk at
 * the plan's LUN, both `deleteOption: Delete` (and the NIC too), so deleting the VM leaves no disk
 * behind; the disks are still in the ledger, recorded before the VM so undo deletes the VM first.
 * Stopping = deallocate (a poller), then generalize (the provisioning scripts already deprovisioned
 * the guest agent), then a check of the instance view.
 */
import type { VirtualMachine } from '@azure/arm-compute';
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

export function vmSpec(s: AzureStep, nicId: string, publicKey: string): VirtualMachine {
  const { t, ctx } = s;
  const { root, data } = ctx.plan.disks;
  const user = ctx.plan.access.sshUser;
  return {
    location: s.location,
    tags: s.tags,
    hardwareProfile: { vmSize: t.vmSize },
    storageProfile: {
      imageReference: { ...t.baseImage },
      osDisk: {
        name: t.names.osDisk,
        createOption: 'FromImage',
        caching: 'ReadWrite',
        diskSizeGB: root.sizeGb,
        ...(root.type ? { managedDisk: { storageAccountType: root.type } } : {}),
        deleteOption: 'Delete',
      },
      dataDisks: [
        {
          lun: dataDiskLun(s),
          name: t.names.dataDisk,
          createOption: 'Empty',
          diskSizeGB: data.sizeGb,
          ...(data.type ? { managedDisk: { storageAccountType: data.type } } : {}),
          deleteOption: 'Delete',
        },
      ],
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
 * Launches the VM. The two disks' intents go into the ledger before the VM's (so undo deletes the VM,
 * which takes its disks, before it tries them), and get their ids from the VM's answer.
 */
export async function launchVm(s: AzureStep, nicId: string, publicKey: string): Promise<VirtualMachine> {
  const { t, c } = s;
  let settle!: { resolve: (vm: VirtualMachine) => void; reject: (err: unknown) => void };
  const launched = new Promise<VirtualMachine>((resolve, reject) => (settle = { resolve, reject }));
  launched.catch(() => undefined); // the failure is thrown below; the disks' intents just stay
  const diskId = (vm: VirtualMachine, lun?: number): string =>
    required(lun === undefined ? vm.storageProfile?.osDisk?.managedDisk?.id : vm.storageProfile?.dataDisks?.find((d) => d.lun === lun)?.managedDisk?.id, 'disk id');
  const lun = dataDiskLun(s);
  const disks = [
    s.record(KIND.disk, t.names.osDisk, async () => ({ id: diskId(await launched) }), { extra: { disk: 'os', vm: t.names.vm } }),
    s.record(KIND.disk, t.names.dataDisk, async () => ({ id: diskId(await launched, lun) }), { extra: { disk: 'data', lun: String(lun), vm: t.names.vm } }),
  ];
  // The recorder runs each create once its intent is on disk; the ledger queue keeps that order.
  const disksRecorded = Promise.allSettled(disks);
  try {
    const vm = await s.record(KIND.vm, t.names.vm, async () => {
      const made = await arm('creating virtual machine', s.id('virtual-machine', t.names.vm), () => c.compute.virtualMachines.beginCreateOrUpdateAndWait(s.group, t.names.vm, vmSpec(s, nicId, publicKey), s.call));
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
