import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { LOCATION, buildNetwork, clients, vmSpec, vmStates, type Clients } from './fixtures.js';
import { startArmFake, type ArmFake } from './index.js';

describe('ARM fake: an image build through the real SDK clients', () => {
  let fake: ArmFake;
  let c: Clients;
  beforeEach(async () => {
    fake = await startArmFake();
    c = clients(fake);
  });
  afterEach(() => fake.close());

  test('group, network, VM, deallocate, generalize, image, gallery version in two regions, deletes', async () => {
    const rg = 'kiln-r1-build';
    const tags = { 'kiln:run': 'r1', 'kiln:build': 'sourcegraph-azure-small' };
    const group = await c.resources.resourceGroups.createOrUpdate(rg, { location: LOCATION, tags });
    expect(group).toMatchObject({ name: rg, location: LOCATION, tags, properties: { provisioningState: 'Succeeded' } });
    expect((await c.resources.resourceGroups.checkExistence(rg)).body).toBe(true);

    // network: the NSG rule is stored as sent, the public IP is a loopback address, the subnet knows its NIC
    const net = await buildNetwork(c, rg, 'kiln-r1', tags);
    expect(net.ipAddress).toMatch(/^127\.0\.10\.\d+$/);
    const nsg = await c.network.networkSecurityGroups.get(rg, 'kiln-r1-nsg');
    expect(nsg.securityRules?.[0]).toMatchObject({
      sourceAddressPrefix: '203.0.113.7/32',
      destinationPortRange: '22',
      access: 'Allow',
      direction: 'Inbound',
      priority: 100,
      provisioningState: 'Succeeded',
    });
    expect(nsg.networkInterfaces?.map((n) => n.id)).toEqual([net.nicId]);
    const subnet = await c.network.subnets.get(rg, 'kiln-r1-vnet', 'build');
    expect(subnet.ipConfigurations?.map((x) => x.id)).toEqual([`${net.nicId}/ipConfigurations/primary`]);
    const nic = await c.network.networkInterfaces.get(rg, 'kiln-r1-nic');
    expect(nic.ipConfigurations?.[0]?.privateIPAddress).toBe('10.20.1.4');

    // VM: disks and machine made through the backend, with the NIC's public address and the admin user
    const vmName = 'kiln-r1-vm';
    const vm = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, vmName, vmSpec(net.nicId, { tags }), c.poll);
    expect(vm.provisioningState).toBe('Succeeded');
    expect(vm.tags).toEqual(tags);
    expect(await vmStates(c, rg, vmName)).toEqual(['PowerState/running']);
    const creates = fake.machines.calls.filter((x) => x.startsWith('createDisk'));
    expect(creates).toEqual([
      expect.stringMatching(/^createDisk disk-\S+ 40 marketplace:Canonical:ubuntu-24_04-lts:server:1\.0\.0$/),
      expect.stringMatching(/^createDisk disk-\S+ 64$/),
    ]);
    expect(fake.machines.calls).toContain(`startMachine vm-${vm.vmId} ${net.ipAddress} kiln`);
    const osDiskName = vm.storageProfile?.osDisk?.name ?? '';
    const dataDiskName = vm.storageProfile?.dataDisks?.[0]?.name ?? '';
    const osDisk = await c.compute.disks.get(rg, osDiskName);
    expect(osDisk).toMatchObject({ managedBy: vm.id, diskState: 'Attached', diskSizeGB: 40, osType: 'Linux' });
    expect(osDisk.tags ?? {}).toEqual({});
    expect((await c.compute.disks.get(rg, dataDiskName)).sku?.name).toBe('StandardSSD_LRS');

    // deallocate: transitional state visible while the step is delayed; generalize refused meanwhile
    fake.transitions.setDelays({ 'vm.deallocate': 150 });
    const deallocating = await c.compute.virtualMachines.beginDeallocate(rg, vmName, c.poll);
    await vi.waitFor(async () => expect(await vmStates(c, rg, vmName)).toEqual(['PowerState/deallocating']), { interval: 10 });
    await expect(c.compute.virtualMachines.generalize(rg, vmName)).rejects.toMatchObject({ statusCode: 409, code: 'OperationNotAllowed' });
    await deallocating.pollUntilDone();
    expect(await vmStates(c, rg, vmName)).toEqual(['PowerState/deallocated']);
    expect(fake.machines.calls).toContain(`stopMachine vm-${vm.vmId}`);
    expect((await c.compute.disks.get(rg, osDiskName)).diskState).toBe('Reserved');
    await c.compute.virtualMachines.generalize(rg, vmName);
    expect(await vmStates(c, rg, vmName)).toEqual(['PowerState/deallocated', 'OSState/generalized']);

    // managed image: one snapshot per disk
    const image = await c.compute.images.beginCreateOrUpdateAndWait(
      rg,
      'kiln-r1-image',
      { location: LOCATION, tags, sourceVirtualMachine: { id: vm.id }, hyperVGeneration: 'V1' },
      c.poll,
    );
    expect(image.provisioningState).toBe('Succeeded');
    expect(image.storageProfile?.osDisk).toMatchObject({ osType: 'Linux', osState: 'Generalized', diskSizeGB: 40 });
    expect(image.storageProfile?.dataDisks?.map((d) => [d.lun, d.diskSizeGB])).toEqual([[0, 64]]);
    expect(fake.machines.inventory().snapshots).toHaveLength(2);

    // gallery, definition, version replicated to two regions, progress visible on the way
    const gallery = 'kiln_r1_gallery';
    await c.compute.galleries.beginCreateOrUpdateAndWait(rg, gallery, { location: LOCATION, tags, description: 'kiln images' }, c.poll);
    const definition = await c.compute.galleryImages.beginCreateOrUpdateAndWait(
      rg,
      gallery,
      'sourcegraph',
      {
        location: LOCATION,
        osType: 'Linux',
        osState: 'Generalized',
        hyperVGeneration: 'V1',
        identifier: { publisher: 'kiln', offer: 'sourcegraph', sku: 'appliance' },
      },
      c.poll,
    );
    expect(definition).toMatchObject({ provisioningState: 'Succeeded', osState: 'Generalized', identifier: { sku: 'appliance' } });
    fake.transitions.setDelays({ 'galleryImageVersion.replicate': 40 });
    const publishing = await c.compute.galleryImageVersions.beginCreateOrUpdate(
      rg,
      gallery,
      'sourcegraph',
      '1.2.3',
      {
        location: LOCATION,
        tags,
        publishingProfile: {
          targetRegions: [
            { name: 'West Europe', regionalReplicaCount: 1 },
            { name: 'North Europe', regionalReplicaCount: 2 },
          ],
        },
        storageProfile: { source: { id: image.id } },
      },
      c.poll,
    );
    const status = () => c.compute.galleryImageVersions.get(rg, gallery, 'sourcegraph', '1.2.3', { expand: 'ReplicationStatus' });
    await vi.waitFor(
      async () => {
        const v = await status();
        expect(v.provisioningState).toBe('Creating');
        expect(v.replicationStatus?.aggregatedState).toBe('InProgress');
        expect(v.replicationStatus?.summary?.map((s) => s.progress)).toEqual([50, 50]);
      },
      { interval: 5 },
    );
    const version = await publishing.pollUntilDone();
    expect(version.provisioningState).toBe('Succeeded');
    expect(version.publishingProfile?.targetRegions?.map((r) => [r.name, r.regionalReplicaCount])).toEqual([
      ['West Europe', 1],
      ['North Europe', 2],
    ]);
    expect((await status()).replicationStatus).toEqual({
      aggregatedState: 'Completed',
      summary: [
        { region: 'West Europe', state: 'Completed', progress: 100 },
        { region: 'North Europe', state: 'Completed', progress: 100 },
      ],
    });
    expect(fake.machines.inventory().snapshots).toHaveLength(4); // the version copied the image's two

    // clean-up as a driver does it: VM (OS disk goes with it, data disk and NIC stay), then the rest
    await c.compute.virtualMachines.beginDeleteAndWait(rg, vmName, c.poll);
    await expect(c.compute.disks.get(rg, osDiskName)).rejects.toMatchObject({ statusCode: 404, code: 'ResourceNotFound' });
    const kept = await c.compute.disks.get(rg, dataDiskName);
    expect(kept.diskState).toBe('Unattached');
    expect(kept.managedBy).toBeUndefined();
    expect(fake.machines.inventory().machines).toEqual({});
    await c.compute.disks.beginDeleteAndWait(rg, dataDiskName, c.poll);
    await c.network.networkInterfaces.beginDeleteAndWait(rg, 'kiln-r1-nic', c.poll);
    await c.network.publicIPAddresses.beginDeleteAndWait(rg, 'kiln-r1-ip', c.poll);
    await c.network.networkSecurityGroups.beginDeleteAndWait(rg, 'kiln-r1-nsg', c.poll);
    await c.network.virtualNetworks.beginDeleteAndWait(rg, 'kiln-r1-vnet', c.poll);
    await c.compute.images.beginDeleteAndWait(rg, 'kiln-r1-image', c.poll);
    expect(fake.machines.inventory()).toEqual({ disks: [], snapshots: [expect.any(String), expect.any(String)], machines: {} });
    expect(Object.keys(fake.inventory().resources).sort()).toEqual([
      'Microsoft.Compute/galleries',
      'Microsoft.Compute/galleries/images',
      'Microsoft.Compute/galleries/images/versions',
      'Microsoft.Resources/resourceGroups',
    ]);

    await c.resources.resourceGroups.beginDeleteAndWait(rg, c.poll);
    expect(fake.inventory()).toEqual({ resources: {}, backend: { disks: [], snapshots: [], machines: {} }, operationsInProgress: 0 });
    expect((await c.resources.resourceGroups.checkExistence(rg)).body).toBe(false);
  });

  test('VMs boot from a managed image and from a gallery image, disks restored from their snapshots', async () => {
    const rg = 'kiln-r2';
    await c.resources.resourceGroups.createOrUpdate(rg, { location: LOCATION });
    const net = await buildNetwork(c, rg, 'src');
    const src = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'src', vmSpec(net.nicId), c.poll);
    await c.compute.virtualMachines.beginPowerOffAndWait(rg, 'src', c.poll);
    expect(await vmStates(c, rg, 'src')).toEqual(['PowerState/stopped']);
    await c.compute.virtualMachines.generalize(rg, 'src');
    await expect(c.compute.virtualMachines.beginStartAndWait(rg, 'src', c.poll)).rejects.toMatchObject({ statusCode: 409, code: 'OperationNotAllowed' });
    const image = await c.compute.images.beginCreateOrUpdateAndWait(rg, 'img', { location: LOCATION, sourceVirtualMachine: { id: src.id } }, c.poll);
    await c.compute.galleries.beginCreateOrUpdateAndWait(rg, 'g1', { location: LOCATION }, c.poll);
    await c.compute.galleryImages.beginCreateOrUpdateAndWait(
      rg,
      'g1',
      'app',
      { location: LOCATION, osType: 'Linux', osState: 'Generalized', identifier: { publisher: 'p', offer: 'o', sku: 's' } },
      c.poll,
    );
    // a version captured straight from the VM this time
    await c.compute.galleryImageVersions.beginCreateOrUpdateAndWait(
      rg,
      'g1',
      'app',
      '1.0.0',
      { location: LOCATION, storageProfile: { source: { virtualMachineId: src.id } } },
      c.poll,
    );
    const snapshotsBefore = new Set(fake.machines.inventory().snapshots);
    // publishing again (a retried request) is a no-op update, not a conflict
    const republished = await c.compute.galleryImageVersions.beginCreateOrUpdateAndWait(
      rg,
      'g1',
      'app',
      '1.0.0',
      { location: LOCATION, storageProfile: { source: { virtualMachineId: src.id } } },
      c.poll,
    );
    expect(republished.provisioningState).toBe('Succeeded');
    expect(new Set(fake.machines.inventory().snapshots)).toEqual(snapshotsBefore);
    // adding a target region later replicates just that region
    await c.compute.galleryImageVersions.beginCreateOrUpdateAndWait(
      rg,
      'g1',
      'app',
      '1.0.0',
      {
        location: LOCATION,
        publishingProfile: { targetRegions: [{ name: LOCATION }, { name: 'swedencentral' }] },
        storageProfile: { source: { virtualMachineId: src.id } },
      },
      c.poll,
    );
    const widened = await c.compute.galleryImageVersions.get(rg, 'g1', 'app', '1.0.0', { expand: 'ReplicationStatus' });
    expect(widened.replicationStatus?.summary?.map((r) => [r.region, r.state])).toEqual([
      [LOCATION, 'Completed'],
      ['swedencentral', 'Completed'],
    ]);
    const versions: string[] = [];
    for await (const v of c.compute.galleryImageVersions.listByGalleryImage(rg, 'g1', 'app')) versions.push(v.name ?? '');
    expect(versions).toEqual(['1.0.0']);
    await expect(async () => {
      for await (const _ of c.compute.galleryImageVersions.listByGalleryImage(rg, 'g1', 'nope')) void _;
    }).rejects.toMatchObject({ statusCode: 404, code: 'ResourceNotFound' });

    for (const [name, imageId] of [
      ['from-image', image.id],
      ['from-gallery', `${src.id?.split('/providers/')[0]}/providers/Microsoft.Compute/galleries/g1/images/app`],
    ] as const) {
      const n = await buildNetwork(c, rg, name);
      const fresh = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, name, vmSpec(n.nicId, { imageId, nicDelete: true }), c.poll);
      expect(fresh.storageProfile?.dataDisks?.map((d) => [d.lun, d.createOption, d.diskSizeGB])).toEqual([[0, 'FromImage', 64]]);
      const made = fake.machines.calls.filter((x) => x.startsWith('createDisk')).slice(-2);
      expect(made.map((x) => x.split(' ')[3])).toEqual([expect.stringMatching(/^snap-/), expect.stringMatching(/^snap-/)]);
      expect(made.every((x) => snapshotsBefore.has(x.split(' ')[3] as string))).toBe(true);
      expect(await vmStates(c, rg, name)).toEqual(['PowerState/running']);
      await c.compute.virtualMachines.beginDeleteAndWait(rg, name, c.poll);
      await expect(c.network.networkInterfaces.get(rg, `${name}-nic`)).rejects.toMatchObject({ statusCode: 404 });
    }
  });

  test('sending a create again is an update: tags may change, the admin user may not', async () => {
    const rg = 'kiln-r4';
    await c.resources.resourceGroups.createOrUpdate(rg, { location: LOCATION });
    const net = await buildNetwork(c, rg, 'u');
    const first = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'vm', vmSpec(net.nicId), c.poll);
    const again = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'vm', vmSpec(net.nicId, { tags: { 'kiln:run': 'r4' } }), c.poll);
    expect(again).toMatchObject({ vmId: first.vmId, provisioningState: 'Succeeded', tags: { 'kiln:run': 'r4' } });
    expect(fake.requests.filter((r) => r.operation === 'virtualMachines.createOrUpdate').map((r) => r.status)).toEqual([201, 200]);
    expect(fake.machines.calls.filter((x) => x.startsWith('startMachine'))).toHaveLength(1);
    const renamed = vmSpec(net.nicId);
    renamed.osProfile = { ...renamed.osProfile, adminUsername: 'someoneelse' };
    await expect(c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'vm', renamed, c.poll)).rejects.toMatchObject({
      statusCode: 409,
      code: 'PropertyChangeNotAllowed',
    });
  });

  test('deleting a group takes everything in it, after a delay, and refuses writes meanwhile', async () => {
    const rg = 'kiln-r3';
    await c.resources.resourceGroups.createOrUpdate(rg, { location: LOCATION });
    const net = await buildNetwork(c, rg, 'x');
    const vm = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'vm', vmSpec(net.nicId), c.poll);
    expect(fake.machines.inventory().machines).toEqual({ [`vm-${vm.vmId}`]: 'running' });
    expect(fake.machines.inventory().disks).toHaveLength(2);

    fake.transitions.setDelays({ 'resourceGroup.delete': 100 });
    const deleting = await c.resources.resourceGroups.beginDelete(rg, c.poll);
    expect((await c.resources.resourceGroups.get(rg)).properties?.provisioningState).toBe('Deleting');
    await expect(
      c.network.publicIPAddresses.beginCreateOrUpdateAndWait(rg, 'late', { location: LOCATION }, c.poll),
    ).rejects.toMatchObject({ statusCode: 409, code: 'ResourceGroupBeingDeleted' });
    await deleting.pollUntilDone();

    await expect(c.resources.resourceGroups.get(rg)).rejects.toMatchObject({ statusCode: 404, code: 'ResourceGroupNotFound' });
    expect(fake.liveResourceIds()).toEqual([]);
    expect(fake.machines.inventory()).toEqual({ disks: [], snapshots: [], machines: {} });
  });
});
