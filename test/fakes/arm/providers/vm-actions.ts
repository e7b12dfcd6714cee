/**
 * VM actions and instance view.
 *
 *  - `powerOff`, `deallocate`, `start`: 202 with `Azure-AsyncOperation` and `Location`; the power
 *    state turns transitional (stopping/deallocating/starting) when the operation reaches the VM
 *    (operations on a VM run in order), then final once the backend's stopMachine/startMachine
 *    resolved. A generalized VM refuses powerOff and start (409 OperationNotAllowed).
 *  - `generalize`: synchronous 200 (the SDK expects exactly 200); only from stopped or deallocated,
 *    else 409 OperationNotAllowed. Marks `OSState/generalized`.
 *  - `GET .../instanceView`: the instance view (also served by GET with `$expand=instanceView`).
 */
import { armErrors } from '../errors.js';
import type { Reply } from '../hooks.js';
import { backendError, startLro, type Core, type Json, type RecordHandler, type RequestContext } from '../kinds.js';
import type { ResourceRecord } from '../state.js';
import { enqueue, lunDevices, type DiskInternal, type VmInternal } from './compute-common.js';

type Vm = ResourceRecord<VmInternal>;
type PowerAction = 'powerOff' | 'deallocate' | 'start';

export function vmActions(core: Core): Record<string, RecordHandler> {
  return {
    'POST powerOff': (ctx, rec) => powerAction(core, ctx, rec as Vm, 'powerOff'),
    'POST deallocate': (ctx, rec) => powerAction(core, ctx, rec as Vm, 'deallocate'),
    'POST start': (ctx, rec) => powerAction(core, ctx, rec as Vm, 'start'),
    'POST generalize': (_ctx, rec) => generalize(rec as Vm),
    'GET instanceView': (_ctx, rec) => ({ status: 200, body: instanceView(core, rec as Vm) }),
  };
}

function powerAction(core: Core, ctx: RequestContext, vm: Vm, action: PowerAction): Reply {
  if (vm.properties.provisioningState === 'Deleting') throw armErrors.conflict(`The virtual machine ${vm.name} is being deleted.`);
  if (vm.internal.generalized && action !== 'deallocate') {
    throw armErrors.operationNotAllowed(`Operation '${action}' is not allowed on VM '${vm.name}' since the VM is generalized.`);
  }
  const step = action === 'powerOff' ? 'vm.powerOff' : action === 'deallocate' ? 'vm.deallocate' : 'vm.start';
  const wait = (): Promise<void> => core.steps.wait(step, { resourceId: vm.id });
  const fail = (e: unknown): never => {
    throw backendError(e);
  };
  return startLro(core, ctx, vm, {
    step,
    status: 202,
    location: true,
    work: () =>
      enqueue(vm, async () => {
        const before = vm.internal.power;
        const up = before === 'running' || before === 'starting';
        if (action === 'powerOff') {
          if (!up) return wait();
          vm.internal.power = 'stopping';
          await wait();
          await core.machines.stopMachine(vm.internal.machineId).catch(fail);
          vm.internal.power = 'stopped';
        } else if (action === 'deallocate') {
          vm.internal.power = 'deallocating';
          await wait();
          if (up && vm.internal.machineExists) await core.machines.stopMachine(vm.internal.machineId).catch(fail);
          vm.internal.power = 'deallocated';
        } else {
          if (up) return wait();
          vm.internal.power = 'starting';
          await wait();
          const disks = vm.internal.disks.map((d) => ({ backendId: core.state.get<DiskInternal>(d.id)?.internal.backendId ?? d.id, lun: d.lun }));
          await core.machines
            .startMachine({
              id: vm.internal.machineId,
              diskIds: disks.map((d) => d.backendId),
              sshUser: vm.internal.sshUser,
              sshPublicKey: vm.internal.sshKey,
              address: vm.internal.address,
              cpus: vm.internal.size.cpus,
              memoryMiB: vm.internal.size.memoryMiB,
              devices: lunDevices(disks),
            })
            .catch(fail);
          vm.internal.machineExists = true;
          vm.internal.power = 'running';
        }
      }),
  });
}

function generalize(vm: Vm): Reply {
  const power = vm.internal.power;
  if (power !== 'stopped' && power !== 'deallocated') {
    throw armErrors.operationNotAllowed(
      `Operation 'generalize' is not allowed on VM '${vm.name}' since the VM is ${power}. Stop or deallocate the VM first.`,
    );
  }
  vm.internal.generalized = true;
  return { status: 200 };
}

const DISPLAY_POWER: Record<string, string> = {
  starting: 'VM starting',
  running: 'VM running',
  stopping: 'VM stopping',
  stopped: 'VM stopped',
  deallocating: 'VM deallocating',
  deallocated: 'VM deallocated',
};

function provisioningStatus(state: string, time: string): Json {
  const display = state === 'Succeeded' ? 'Provisioning succeeded' : state === 'Failed' ? 'Provisioning failed' : state;
  return { code: `ProvisioningState/${state.toLowerCase()}`, level: state === 'Failed' ? 'Error' : 'Info', displayStatus: display, time };
}

export function instanceView(core: Core, vm: Vm): Json {
  const time = new Date().toISOString();
  const statuses: Json[] = [
    provisioningStatus(String(vm.properties.provisioningState), time),
    { code: `PowerState/${vm.internal.power}`, level: 'Info', displayStatus: DISPLAY_POWER[vm.internal.power] },
  ];
  if (vm.internal.generalized) statuses.push({ code: 'OSState/generalized', level: 'Info', displayStatus: 'VM generalized' });
  const disks = vm.internal.disks.map((d) => {
    const disk = core.state.get(d.id);
    return {
      name: disk?.name ?? d.id.split('/').pop(),
      statuses: [provisioningStatus(String(disk?.properties.provisioningState ?? 'Deleted'), time)],
    };
  });
  const computerName = (vm.properties.osProfile as Json | undefined)?.computerName;
  return { computerName, osName: 'ubuntu', osVersion: '22.04', disks, statuses };
}
