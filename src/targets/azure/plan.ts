/** What an Azure build launches, names and publishes: pure data from the definition. */
import type { AzureTargetPlan, DiskPlan } from '../../definition/plan.js';
import { InputError } from '../../core/errors.js';
import { checkedName, imageName, resourceName, type NameParts } from '../../definition/names.js';
import type { Definition, SizeSpec } from '../../definition/schema.js';
import { missing } from '../aws/plan.js';

export function planAzure(def: Definition, size: SizeSpec, parts: NameParts, disks: { rootGb: number; dataGb: number }) {
  const target = def.targets.azure;
  const machine = size.azure;
  if (!target || !machine) throw missing('azure', parts);
  const name = (purpose: string) => checkedName('azure', resourceName(parts, purpose), 'name');
  const gallery = def.publish.azure?.gallery;
  if (gallery && !/^\d+\.\d+\.\d+$/.test(parts.version)) {
    throw new InputError({ field: 'version', message: `gallery image versions must be MAJOR.MINOR.PATCH; ${parts.version} cannot be published to ${gallery.name}` });
  }
  const targetPlan: AzureTargetPlan = {
    kind: 'azure',
    location: target.location,
    subscriptionId: target.subscriptionId,
    vmSize: machine.vmSize,
    baseImage: target.baseImage,
    resourceGroup: target.resourceGroup ? { name: target.resourceGroup, temporary: false } : { name: name('rg'), temporary: true },
    names: {
      vm: name('vm'),
      vnet: name('vnet'),
      subnet: 'builder',
      nsg: name('nsg'),
      publicIp: name('ip'),
      nic: name('nic'),
      osDisk: name('os'),
      dataDisk: name('data'),
      image: checkedName('azure', imageName(parts, { dots: true }), 'name'),
    },
    publish: {
      managedImage: def.publish.azure?.managedImage ?? true,
      gallery: gallery && {
        resourceGroup: gallery.resourceGroup,
        name: gallery.name,
        // One image definition per size: a gallery version is MAJOR.MINOR.PATCH of the product, so the
        // sizes of one release would otherwise all write the same version.
        imageDefinition: checkedName('azure', `${gallery.imageDefinition}-${parts.size.toLowerCase()}`, 'publish.azure.gallery.imageDefinition'),
        identifier: { publisher: gallery.publisher, offer: gallery.offer, sku: `${gallery.sku}-${parts.size.toLowerCase()}` },
        version: checkedName('galleryVersion', parts.version, 'version'),
        replicationRegions: gallery.replicationRegions,
        readers: gallery.readers,
      },
    },
  };
  const root: DiskPlan = { sizeGb: disks.rootGb, type: machine.osDiskType };
  const data: DiskPlan = { sizeGb: disks.dataGb, type: machine.dataDiskType, deviceName: '0' };
  const creates = ['resource-group', 'virtual-network', 'network-security-group', 'public-ip', 'network-interface'];
  return {
    targetPlan,
    disks: { root, data },
    sshUser: target.sshUser,
    sshCidr: target.sshCidr,
    steps: {
      prepare: targetPlan.resourceGroup.temporary ? creates : creates.slice(1),
      launch: ['virtual-machine', 'disk'],
      capture: [...(targetPlan.publish.managedImage ? ['image'] : []), ...(gallery ? ['gallery-image-version'] : [])],
      publish: gallery?.readers.length ? ['role-assignment'] : [],
    },
  };
}
