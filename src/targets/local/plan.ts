/** What a local (QEMU) build launches and writes: pure data from the definition. */
import type { DiskPlan, LocalTargetPlan } from '../../definition/plan.js';
import { checkedName, imageName, resourceName, type NameParts } from '../../definition/names.js';
import type { Definition, SizeSpec } from '../../definition/schema.js';
import { missing } from '../aws/plan.js';

export function planLocal(def: Definition, size: SizeSpec, parts: NameParts, disks: { rootGb: number; dataGb: number }) {
  const target = def.targets.local;
  const machine = size.local;
  if (!target || !machine) throw missing('local', parts);
  const targetPlan: LocalTargetPlan = {
    kind: 'local',
    baseImage: target.baseImage,
    accelerator: target.accelerator,
    cpus: machine.cpus,
    memoryMiB: machine.memoryMiB,
    names: {
      vm: resourceName(parts, 'builder'),
      rootImage: checkedName('file', imageName(parts, { dots: true }), 'name'),
      dataImage: checkedName('file', imageName(parts, { dots: true, suffix: 'data' }), 'name'),
    },
    publish: { formats: def.publish.local?.formats ?? ['qcow2'] },
  };
  const root: DiskPlan = { sizeGb: disks.rootGb };
  const data: DiskPlan = { sizeGb: disks.dataGb, deviceName: 'kiln-data' };
  return {
    targetPlan,
    disks: { root, data },
    sshUser: target.sshUser,
    sshCidr: undefined,
    steps: { prepare: ['ssh-key', 'seed'], launch: ['vm', 'disk'], capture: ['image-file'], publish: [] },
  };
}
