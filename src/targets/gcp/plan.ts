/** What a GCE build launches, names and publishes: pure data from the definition. */
import type { DiskPlan, GcpTargetPlan } from '../../definition/plan.js';
import { checkedName, imageName, resourceName, type NameParts } from '../../definition/names.js';
import type { Definition, SizeSpec } from '../../definition/schema.js';
import { missing } from '../aws/plan.js';

export function planGcp(def: Definition, size: SizeSpec, parts: NameParts, disks: { rootGb: number; dataGb: number }) {
  const target = def.targets.gcp;
  const machine = size.gcp;
  if (!target || !machine) throw missing('gcp', parts);
  const name = (purpose: string) => checkedName('gce', resourceName(parts, purpose), 'name');
  const publish = def.publish.gcp;
  const targetPlan: GcpTargetPlan = {
    kind: 'gcp',
    project: target.project,
    zone: target.zone,
    machineType: machine.machineType,
    network: target.network,
    subnetwork: target.subnetwork,
    baseImage: target.baseImage,
    names: {
      instance: name('builder'),
      bootDisk: name('boot'),
      dataDisk: name('data'),
      firewall: name('ssh'),
      networkTag: name('builder'),
      rootImage: checkedName('gce', imageName(parts, { dots: false }), 'name'),
      dataImage: checkedName('gce', imageName(parts, { dots: false, suffix: 'data' }), 'name'),
    },
    publish: {
      // One family per size, like Azure's image definitions: a family resolves to one image, and
      // deprecating "the previous image" must never hit another size of the same run.
      family: publish?.family ? checkedName('gce', `${publish.family}-${parts.size.toLowerCase()}`, 'publish.gcp.family') : undefined,
      storageLocations: publish?.storageLocations ?? [],
      iam: publish?.iam ?? [],
      deprecatePrevious: publish?.deprecatePrevious ?? false,
    },
  };
  const root: DiskPlan = { sizeGb: disks.rootGb, type: machine.bootDiskType };
  const data: DiskPlan = { sizeGb: disks.dataGb, type: machine.dataDiskType, deviceName: 'kiln-data' };
  return {
    targetPlan,
    disks: { root, data },
    sshUser: target.sshUser,
    sshCidr: target.sshCidr,
    steps: { prepare: ['firewall'], launch: ['instance', 'disk'], capture: ['image'], publish: [] },
  };
}
