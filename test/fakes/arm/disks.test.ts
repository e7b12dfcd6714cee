import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { VirtualMachine } from '@azure/arm-compute';
import { LOCATION, buildNetwork, clients, vmSpec, vmStates, type Clients } from './fixtures.js';
import { startArmFake, type ArmFake } from './index.js';

/** What the SDKs throw for an ARM error answer. */
const restError = (statusCode: number, code: string) => expect.objectContaining({ name: 'RestError', statusCode, code });

describe('ARM fake: disks of their own, images of disks, existing disks attached', () => {
  let fake: ArmFake;
  let c: Clients;
  const rg = 'kiln-d1';
  let imageId = '';
  beforeEach(async () => {
    fake = await startArmFake();
    c = clients(fake);
    await c.resources.resourceGroups.createOrUpdate(rg, { location: LOCATION });
    // an image with an OS disk and a 64 GB data disk at lun 0
    const net = await buildNetwork(c, rg, 'src');
    const src = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'src', vmSpec(net.nicId, { nicDelete: true }), c.poll);
    await c.compute.virtualMachines.beginDeallocateAndWait(rg, 'src', c.poll);
    await c.compute.virtualMachines.generalize(rg, 'src');
    imageId = (await c.compute.images.beginCreateOrUpdateAndWait(rg, 'img', { location: LOCATION, sourceVirtualMachine: { id: src.id }, hyperVGeneration: 'V2' }, c.poll)).id ?? '';
    await c.compute.virtualMachines.beginDeleteAndWait(rg, 'src', c.poll);
  });
  afterEach(() => fake.close());

  /** A VM from `image` whose data disks are `dataDisks`. */
  const spec = async (name: string, image: string, dataDisks: NonNullable<VirtualMachine['storageProfile']>['dataDisks']): Promise<VirtualMachine> => {
    const net = await buildNetwork(c, rg, name);
    const s = vmSpec(net.nicId, { imageId: image, nicDelete: true });
    s.storageProfile = { ...s.storageProfile, dataDisks };
    return s;
  };

  test('a disk from the image OS disk, an image of that disk alone, and a VM from it with an existing disk attached', async () => {
    const os = await c.compute.disks.beginCreateOrUpdateAndWait(rg, 'os-copy', { location: LOCATION, creationData: { createOption: 'FromImage', imageReference: { id: imageId } } }, c.poll);
    expect(os).toMatchObject({ provisioningState: 'Succeeded', osType: 'Linux', hyperVGeneration: 'V2', diskSizeGB: 40, diskState: 'Unattached' });
    const dataCopy = await c.compute.disks.beginCreateOrUpdateAndWait(rg, 'data-copy', { location: LOCATION, creationData: { createOption: 'FromImage', imageReference: { id: imageId, lun: 0 } } }, c.poll);
    expect(dataCopy).toMatchObject({ diskSizeGB: 64 });
    expect(dataCopy.osType).toBeUndefined();
    await expect(
      c.compute.disks.beginCreateOrUpdateAndWait(rg, 'nope', { location: LOCATION, creationData: { createOption: 'FromImage', imageReference: { id: imageId, lun: 3 } } }, c.poll),
    ).rejects.toEqual(restError(400, 'InvalidParameter'));
    const kept = await c.compute.disks.beginCreateOrUpdateAndWait(rg, 'kept', { location: LOCATION, creationData: { createOption: 'Empty' }, diskSizeGB: 100, tags: { owner: 'customer' } }, c.poll);
    expect(kept).toMatchObject({ diskSizeGB: 100, tags: { owner: 'customer' }, diskState: 'Unattached' });

    const osOnly = await c.compute.images.beginCreateOrUpdateAndWait(
      rg,
      'os-only',
      { location: LOCATION, hyperVGeneration: 'V2', storageProfile: { osDisk: { osType: 'Linux', osState: 'Generalized', managedDisk: { id: os.id } } } },
      c.poll,
    );
    expect(osOnly.storageProfile?.dataDisks).toEqual([]);
    expect(osOnly.storageProfile?.osDisk).toMatchObject({ managedDisk: { id: os.id }, diskSizeGB: 40 });

    const vm = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(
      rg,
      'appliance',
      await spec('appliance', osOnly.id ?? '', [{ lun: 0, createOption: 'Attach', managedDisk: { id: kept.id } }]),
      c.poll,
    );
    expect(vm.storageProfile?.dataDisks?.map((d) => [d.lun, d.createOption, d.managedDisk?.id, d.deleteOption])).toEqual([[0, 'Attach', kept.id, 'Detach']]);
    expect(await c.compute.disks.get(rg, 'kept')).toMatchObject({ managedBy: vm.id, diskState: 'Attached' });
    // the machine got the existing disk: nothing new was made for it
    const kepts = fake.state.get<{ backendId: string }>(kept.id)?.internal.backendId ?? '';
    expect(fake.machines.calls.filter((x) => x.startsWith(`createDisk ${kepts}`))).toHaveLength(1);
    expect(fake.machines.calls.at(-1)).toMatch(/^startMachine /);
    await expect(c.compute.disks.beginDeleteAndWait(rg, 'kept', c.poll)).rejects.toEqual(restError(409, 'OperationNotAllowed'));

    // deleting the VM takes its OS disk and leaves the attached one, unattached
    await c.compute.virtualMachines.beginDeleteAndWait(rg, 'appliance', c.poll);
    const after = await c.compute.disks.get(rg, 'kept');
    expect(after.managedBy).toBeUndefined();
    expect(after.diskState).toBe('Unattached');
    expect(fake.machines.inventory().disks).toContain(kepts);
  });

  test("ARM's refusals: an image's data disk left out or replaced, a disk attached elsewhere", async () => {
    const kept = await c.compute.disks.beginCreateOrUpdateAndWait(rg, 'kept', { location: LOCATION, creationData: { createOption: 'Empty' }, diskSizeGB: 100 }, c.poll);
    const attach = { lun: 0, createOption: 'Attach', managedDisk: { id: kept.id } } as const;
    const lunsMissing = /StorageProfile\.dataDisks\.lun does not have required value\(s\) for image specified in storage profile/;
    for (const [name, dataDisks] of [
      ['replaced', [attach]],
      ['left-out', [{ ...attach, lun: 1 }]],
    ] as const) {
      const err = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, name, await spec(name, imageId, [...dataDisks]), c.poll).catch((e: unknown) => e);
      expect(err, name).toEqual(restError(400, 'InvalidParameter'));
      expect((err as Error).message).toMatch(lunsMissing);
    }
    // listed FromImage, another disk attached at another lun is fine
    const both = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(
      rg,
      'both',
      await spec('both', imageId, [{ lun: 0, createOption: 'FromImage' }, { ...attach, lun: 1 }]),
      c.poll,
    );
    expect(both.storageProfile?.dataDisks?.map((d) => [d.lun, d.createOption])).toEqual([
      [0, 'FromImage'],
      [1, 'Attach'],
    ]);
    expect(await vmStates(c, rg, 'both')).toEqual(['PowerState/running']);

    const err = await c.compute.virtualMachines
      .beginCreateOrUpdateAndWait(rg, 'second', await spec('second', imageId, [{ lun: 0, createOption: 'FromImage' }, { ...attach, lun: 2 }]), c.poll)
      .catch((e: unknown) => e);
    expect(err).toEqual(restError(409, 'ConflictingUserInput'));
    expect((err as Error).message).toMatch(/already attached to VM .*\/both\. A disk can be attached to only one VM at a time/);
    await expect(
      c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'ghost', await spec('ghost', imageId, [{ lun: 0, createOption: 'FromImage' }, { ...attach, lun: 1, managedDisk: { id: `${kept.id}-gone` } }]), c.poll),
    ).rejects.toEqual(restError(404, 'NotFound'));
    expect(fake.inventory().resources['Microsoft.Compute/virtualMachines']).toEqual([both.id]);
  });
});
