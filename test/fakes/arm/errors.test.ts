import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { NullMachines } from '../common/machines.js';
import type { VirtualMachine } from '@azure/arm-compute';
import { LOCATION, SSH_KEY, buildNetwork, clients, vmSpec, type BuildNetwork, type Clients } from './fixtures.js';
import { ArmError, startArmFake, type ArmFake } from './index.js';

/** What the SDKs throw for an ARM error answer. */
const restError = (statusCode: number, code: string) => expect.objectContaining({ name: 'RestError', statusCode, code });

describe('ARM fake: errors surface as RestError with ARM codes', () => {
  let fake: ArmFake;
  let c: Clients;
  let net: BuildNetwork;
  const rg = 'kiln-e1';
  beforeEach(async () => {
    fake = await startArmFake();
    c = clients(fake);
    await c.resources.resourceGroups.createOrUpdate(rg, { location: LOCATION });
    net = await buildNetwork(c, rg, 'e1');
  });
  afterEach(() => fake.close());

  test('missing things: group, resource, subnet', async () => {
    await expect(c.resources.resourceGroups.get('nope')).rejects.toEqual(restError(404, 'ResourceGroupNotFound'));
    await expect(c.compute.virtualMachines.get('nope', 'vm')).rejects.toEqual(restError(404, 'ResourceGroupNotFound'));
    await expect(c.compute.virtualMachines.get(rg, 'ghost')).rejects.toEqual(restError(404, 'ResourceNotFound'));
    await expect(c.network.subnets.get(rg, 'e1-vnet', 'ghost')).rejects.toEqual(restError(404, 'NotFound'));
    await expect(c.compute.galleryImages.get(rg, 'nogallery', 'x')).rejects.toEqual(restError(404, 'ResourceNotFound'));
    // deleting what is not there is fine, as in ARM
    await expect(c.compute.virtualMachines.beginDeleteAndWait(rg, 'ghost', c.poll)).resolves.toBeUndefined();
  });

  test('deleting what something still uses fails with the dependency error', async () => {
    const vm = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'vm', vmSpec(net.nicId), c.poll);
    await expect(c.network.subnets.beginDeleteAndWait(rg, 'e1-vnet', 'build', c.poll)).rejects.toEqual(restError(400, 'InUseSubnetCannotBeDeleted'));
    await expect(c.network.virtualNetworks.beginDeleteAndWait(rg, 'e1-vnet', c.poll)).rejects.toEqual(restError(400, 'InUseSubnetCannotBeDeleted'));
    await expect(c.network.networkSecurityGroups.beginDeleteAndWait(rg, 'e1-nsg', c.poll)).rejects.toEqual(
      restError(400, 'InUseNetworkSecurityGroupCannotBeDeleted'),
    );
    await expect(c.network.publicIPAddresses.beginDeleteAndWait(rg, 'e1-ip', c.poll)).rejects.toEqual(restError(400, 'PublicIPAddressInUse'));
    await expect(c.network.networkInterfaces.beginDeleteAndWait(rg, 'e1-nic', c.poll)).rejects.toEqual(restError(400, 'NicInUse'));
    await expect(c.compute.disks.beginDeleteAndWait(rg, vm.storageProfile?.osDisk?.name ?? '', c.poll)).rejects.toEqual(
      restError(409, 'OperationNotAllowed'),
    );
    // nothing was deleted
    expect(fake.inventory().resources['Microsoft.Network/networkInterfaces']).toEqual([net.nicId]);
    expect(fake.inventory().resources['Microsoft.Compute/disks']).toHaveLength(2);
  });

  test('state rules: generalize only when stopped, images only from generalized VMs', async () => {
    const vm = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'vm', vmSpec(net.nicId), c.poll);
    await expect(c.compute.virtualMachines.generalize(rg, 'vm')).rejects.toEqual(restError(409, 'OperationNotAllowed'));
    await c.compute.virtualMachines.beginDeallocateAndWait(rg, 'vm', c.poll);
    await expect(
      c.compute.images.beginCreateOrUpdateAndWait(rg, 'img', { location: LOCATION, sourceVirtualMachine: { id: vm.id } }, c.poll),
    ).rejects.toEqual(restError(409, 'OperationNotAllowed'));
    await c.compute.virtualMachines.generalize(rg, 'vm');
    await expect(
      c.compute.images.beginCreateOrUpdateAndWait(rg, 'img', { location: LOCATION, sourceVirtualMachine: { id: vm.id } }, c.poll),
    ).resolves.toMatchObject({ provisioningState: 'Succeeded' });
  });

  test('VM requests are validated like ARM does', async () => {
    const bad = async (change: (spec: VirtualMachine) => void, status: number, code: string, message: RegExp) => {
      const spec = vmSpec(net.nicId);
      change(spec);
      const err = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'bad', spec, c.poll).catch((e: unknown) => e);
      expect(err).toEqual(restError(status, code));
      expect((err as Error).message).toMatch(message);
    };
    await bad((s) => (s.hardwareProfile = { vmSize: 'Standard_Imaginary' }), 400, 'InvalidParameter', /VM size is not valid/);
    await bad((s) => (s.osProfile = { ...s.osProfile, adminUsername: 'root' }), 400, 'InvalidParameter', /Admin Username specified is not allowed/);
    await bad(
      (s) => (s.osProfile = { adminUsername: 'kiln', linuxConfiguration: { disablePasswordAuthentication: true, ssh: { publicKeys: [{ path: '/root/.ssh/authorized_keys', keyData: SSH_KEY }] } } }),
      400,
      'InvalidParameter',
      /limited to its default value \/home\/kiln\/\.ssh\/authorized_keys/,
    );
    await bad(
      (s) => (s.osProfile = { adminUsername: 'kiln', linuxConfiguration: { disablePasswordAuthentication: true, ssh: { publicKeys: [] } } }),
      400,
      'InvalidParameter',
      /SSH or by user name and password must be enabled/,
    );
    await bad((s) => (s.storageProfile = { ...s.storageProfile, osDisk: { createOption: 'FromImage', diskSizeGB: 10 } }), 409, 'ResizeDiskError', /smaller than/);
    await bad((s) => (s.networkProfile = { networkInterfaces: [{ id: `${net.nicId}-missing` }] }), 400, 'InvalidResourceReference', /was not found/);
    expect(fake.inventory().resources['Microsoft.Compute/virtualMachines']).toBeUndefined();
    expect(fake.inventory().resources['Microsoft.Compute/disks']).toBeUndefined();
  });

  test('gallery rules: names, parents, nested deletes, target regions', async () => {
    await expect(c.compute.galleries.beginCreateOrUpdateAndWait(rg, 'kiln-gallery', { location: LOCATION }, c.poll)).rejects.toEqual(
      restError(400, 'InvalidParameter'),
    );
    const definition = { location: LOCATION, osType: 'Linux', osState: 'Generalized', identifier: { publisher: 'p', offer: 'o', sku: 's' } } as const;
    await expect(c.compute.galleryImages.beginCreateOrUpdateAndWait(rg, 'g', 'app', definition, c.poll)).rejects.toEqual(
      restError(404, 'ParentResourceNotFound'),
    );
    await c.compute.galleries.beginCreateOrUpdateAndWait(rg, 'g', { location: LOCATION }, c.poll);
    await expect(
      c.compute.galleryImageVersions.beginCreateOrUpdateAndWait(rg, 'g', 'app', '1.0.0', { location: LOCATION, storageProfile: {} }, c.poll),
    ).rejects.toEqual(restError(404, 'ParentResourceNotFound'));
    await c.compute.galleryImages.beginCreateOrUpdateAndWait(rg, 'g', 'app', definition, c.poll);
    await expect(
      c.compute.galleryImages.beginCreateOrUpdateAndWait(rg, 'g', 'app', { ...definition, osState: 'Specialized' }, c.poll),
    ).rejects.toEqual(restError(409, 'PropertyChangeNotAllowed'));
    await expect(c.compute.galleries.beginDeleteAndWait(rg, 'g', c.poll)).rejects.toEqual(restError(409, 'CannotDeleteResource'));

    const vm = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'vm', vmSpec(net.nicId), c.poll);
    await c.compute.virtualMachines.beginDeallocateAndWait(rg, 'vm', c.poll);
    const version = (regions: string[]) => ({
      location: LOCATION,
      publishingProfile: { targetRegions: regions.map((name) => ({ name })) },
      storageProfile: { source: { id: vm.id } },
    });
    await expect(c.compute.galleryImageVersions.beginCreateOrUpdateAndWait(rg, 'g', 'app', '1.0.0', version([LOCATION]), c.poll)).rejects.toEqual(
      restError(409, 'OperationNotAllowed'), // not generalized
    );
    await c.compute.virtualMachines.generalize(rg, 'vm');
    await expect(c.compute.galleryImageVersions.beginCreateOrUpdateAndWait(rg, 'g', 'app', '1.0.0', version(['northeurope']), c.poll)).rejects.toEqual(
      restError(400, 'InvalidParameter'),
    );
    await expect(c.compute.galleryImageVersions.beginCreateOrUpdateAndWait(rg, 'g', 'app', 'v1', version([LOCATION]), c.poll)).rejects.toEqual(
      restError(400, 'InvalidParameter'),
    );
    await c.compute.galleryImageVersions.beginCreateOrUpdateAndWait(rg, 'g', 'app', '1.0.0', version([LOCATION]), c.poll);
    await expect(c.compute.galleryImages.beginDeleteAndWait(rg, 'g', 'app', c.poll)).rejects.toEqual(restError(409, 'CannotDeleteResource'));
    await c.compute.galleryImageVersions.beginDeleteAndWait(rg, 'g', 'app', '1.0.0', c.poll);
    await c.compute.galleryImages.beginDeleteAndWait(rg, 'g', 'app', c.poll);
    await c.compute.galleries.beginDeleteAndWait(rg, 'g', c.poll);
    expect(fake.inventory().resources['Microsoft.Compute/galleries']).toBeUndefined();
  });

  test('a failed operation fails the poller: replication failing in one region', async () => {
    const vm = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'vm', vmSpec(net.nicId), c.poll);
    await c.compute.virtualMachines.beginDeallocateAndWait(rg, 'vm', c.poll);
    await c.compute.virtualMachines.generalize(rg, 'vm');
    await c.compute.galleries.beginCreateOrUpdateAndWait(rg, 'g', { location: LOCATION }, c.poll);
    await c.compute.galleryImages.beginCreateOrUpdateAndWait(
      rg,
      'g',
      'app',
      { location: LOCATION, osType: 'Linux', osState: 'Generalized', identifier: { publisher: 'p', offer: 'o', sku: 's' } },
      c.poll,
    );
    const seen: string[] = [];
    fake.intercept('galleryImageVersion.replicate', (ctx) => {
      seen.push(ctx.region ?? '');
      if (ctx.region === 'northeurope') return new ArmError(500, 'ReplicationJobFailed', 'Replication to northeurope failed: storage unavailable.');
      return undefined;
    });
    const err = await c.compute.galleryImageVersions
      .beginCreateOrUpdateAndWait(
        rg,
        'g',
        'app',
        '2.0.0',
        { location: LOCATION, publishingProfile: { targetRegions: [{ name: LOCATION }, { name: 'North Europe' }] }, storageProfile: { source: { id: vm.id } } },
        c.poll,
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/long-running operation has failed.*ReplicationJobFailed/);
    expect(seen.sort()).toEqual(['northeurope', 'westeurope']);
    const version = await c.compute.galleryImageVersions.get(rg, 'g', 'app', '2.0.0', { expand: 'ReplicationStatus' });
    expect(version.provisioningState).toBe('Failed');
    expect(version.replicationStatus).toEqual({
      aggregatedState: 'Failed',
      summary: [
        { region: LOCATION, state: 'Completed', progress: 100 },
        { region: 'North Europe', state: 'Failed', progress: 0, details: 'Replication to northeurope failed: storage unavailable.' },
      ],
    });
  });

  test('a failing step or machine backend fails VM creation with provisioningState Failed', async () => {
    const undo = fake.intercept('vm.create', () => new ArmError(409, 'AllocationFailed', 'Allocation failed. We do not have sufficient capacity.'));
    const err = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'vm', vmSpec(net.nicId), c.poll).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/AllocationFailed/);
    expect((await c.compute.virtualMachines.get(rg, 'vm')).provisioningState).toBe('Failed');
    undo();
    await c.compute.virtualMachines.beginDeleteAndWait(rg, 'vm', c.poll);

    class BrokenMachines extends NullMachines {
      override async startMachine(): Promise<void> {
        throw new Error('qemu refused to start');
      }
    }
    const broken = await startArmFake({ machines: new BrokenMachines() });
    try {
      const b = clients(broken);
      await b.resources.resourceGroups.createOrUpdate(rg, { location: LOCATION });
      const n = await buildNetwork(b, rg, 'b');
      const e2 = await b.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'vm', vmSpec(n.nicId), b.poll).catch((e: unknown) => e);
      expect((e2 as Error).message).toMatch(/InternalExecutionError.*qemu refused to start/);
      expect(broken.machines.inventory().disks).toHaveLength(2); // disks made before the failure stay until deleted
      await b.resources.resourceGroups.beginDeleteAndWait(rg, b.poll);
      expect(broken.machines.inventory()).toEqual({ disks: [], snapshots: [], machines: {} });
    } finally {
      await broken.close();
    }
  });
});
