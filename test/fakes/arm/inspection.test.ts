import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { LOCATION, buildNetwork, clients, vmSpec, type Clients } from './fixtures.js';
import { startArmFake, type ArmFake } from './index.js';

describe('ARM fake: inspection and tag sweeps', () => {
  let fake: ArmFake;
  let c: Clients;
  beforeEach(async () => {
    fake = await startArmFake();
    c = clients(fake);
  });
  afterEach(() => fake.close());

  test('inventory shows what a careless clean-up leaves behind, API and backend', async () => {
    const rg = 'kiln-i1';
    const tags = { 'kiln:run': 'i1' };
    await c.resources.resourceGroups.createOrUpdate(rg, { location: LOCATION, tags });
    const net = await buildNetwork(c, rg, 'i1', tags);
    const vm = await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'vm', vmSpec(net.nicId, { tags }), c.poll);
    const dataDisk = vm.storageProfile?.dataDisks?.[0]?.managedDisk?.id;

    expect(fake.inventory()).toEqual({
      resources: {
        'Microsoft.Resources/resourceGroups': [`/subscriptions/${fake.subscriptionId}/resourceGroups/${rg}`],
        'Microsoft.Network/virtualNetworks': [expect.stringMatching(/\/virtualNetworks\/i1-vnet$/)],
        'Microsoft.Network/virtualNetworks/subnets': [net.subnetId],
        'Microsoft.Network/networkSecurityGroups': [net.nsgId],
        'Microsoft.Network/networkSecurityGroups/securityRules': [`${net.nsgId}/securityRules/ssh-from-builder`],
        'Microsoft.Network/publicIPAddresses': [net.ipId],
        'Microsoft.Network/networkInterfaces': [net.nicId],
        'Microsoft.Compute/virtualMachines': [vm.id],
        'Microsoft.Compute/disks': [vm.storageProfile?.osDisk?.managedDisk?.id, dataDisk].sort(),
      },
      backend: { disks: [expect.stringMatching(/^disk-/), expect.stringMatching(/^disk-/)], snapshots: [], machines: { [`vm-${vm.vmId}`]: 'running' } },
      operationsInProgress: 0,
    });

    // delete only the VM and the network: the data disk (deleteOption Detach) is left over
    await c.compute.virtualMachines.beginDeleteAndWait(rg, 'vm', c.poll);
    await c.network.networkInterfaces.beginDeleteAndWait(rg, 'i1-nic', c.poll);
    await c.network.publicIPAddresses.beginDeleteAndWait(rg, 'i1-ip', c.poll);
    await c.network.networkSecurityGroups.beginDeleteAndWait(rg, 'i1-nsg', c.poll);
    await c.network.virtualNetworks.beginDeleteAndWait(rg, 'i1-vnet', c.poll);
    const left = fake.inventory();
    expect(left.resources).toEqual({
      'Microsoft.Resources/resourceGroups': [`/subscriptions/${fake.subscriptionId}/resourceGroups/${rg}`],
      'Microsoft.Compute/disks': [dataDisk],
    });
    expect(left.backend.disks).toHaveLength(1);
    expect(left.backend.machines).toEqual({});
  });

  test('sweeps by tag find tagged resources and groups, but not the untagged implicit disks', async () => {
    const tags = { 'kiln:run': 'sweep-1', 'kiln:definition': 'sourcegraph' };
    await c.resources.resourceGroups.createOrUpdate('kiln-s1', { location: LOCATION, tags });
    await c.resources.resourceGroups.createOrUpdate('other', { location: LOCATION, tags: { team: 'x' } });
    const net = await buildNetwork(c, 'kiln-s1', 's1', tags);
    await c.compute.virtualMachines.beginCreateOrUpdateAndWait('kiln-s1', 'vm', vmSpec(net.nicId, { tags }), c.poll);
    await buildNetwork(c, 'other', 'o1', { 'kiln:run': 'sweep-2' });

    const list = async (filter: string) => {
      const out: string[] = [];
      for await (const r of c.resources.resources.list({ filter })) out.push(`${r.type}/${r.name}`);
      return out.sort();
    };
    expect(await list("tagName eq 'kiln:run' and tagValue eq 'sweep-1'")).toEqual([
      'Microsoft.Compute/virtualMachines/vm',
      'Microsoft.Network/networkInterfaces/s1-nic',
      'Microsoft.Network/networkSecurityGroups/s1-nsg',
      'Microsoft.Network/publicIPAddresses/s1-ip',
      'Microsoft.Network/virtualNetworks/s1-vnet',
    ]);
    expect(await list("tagName eq 'kiln:run'")).toHaveLength(9);
    expect(await list("resourceType eq 'Microsoft.Compute/disks'")).toHaveLength(2);

    const groups: string[] = [];
    for await (const g of c.resources.resourceGroups.list({ filter: "tagName eq 'kiln:run'" })) groups.push(g.name ?? '');
    expect(groups).toEqual(['kiln-s1']);
    const inGroup: string[] = [];
    for await (const r of c.resources.resources.listByResourceGroup('other')) inGroup.push(r.name ?? '');
    expect(inGroup.sort()).toEqual(['o1-ip', 'o1-nic', 'o1-nsg', 'o1-vnet']);

    // ARM does not combine a tag filter with anything else
    await expect(list("resourceType eq 'Microsoft.Compute/disks' and tagName eq 'kiln:run'")).rejects.toMatchObject({
      statusCode: 400,
      code: 'InvalidFilterInQueryString',
    });
  });

  test('console output, request log and backend calls are there for tests to read', async () => {
    await c.resources.resourceGroups.createOrUpdate('kiln-c1', { location: LOCATION });
    const net = await buildNetwork(c, 'kiln-c1', 'c1');
    const vm = await c.compute.virtualMachines.beginCreateOrUpdateAndWait('kiln-c1', 'vm', vmSpec(net.nicId), c.poll);
    expect(await fake.consoleOutput('vm')).toBe(`fake console of vm-${vm.vmId}\n`);
    expect(await fake.consoleOutput(vm.id ?? '')).toBe(`fake console of vm-${vm.vmId}\n`);
    await expect(fake.consoleOutput('nope')).rejects.toThrow(/no VM nope/);
    expect(fake.requests.find((r) => r.operation === 'virtualMachines.createOrUpdate')).toMatchObject({ method: 'PUT', status: 201 });
    expect(fake.machines.calls.filter((x) => x.startsWith('startMachine'))).toEqual([`startMachine vm-${vm.vmId} ${net.ipAddress} kiln`]);
    const second = await buildNetwork(c, 'kiln-c1', 'c2');
    expect(second.ipAddress).not.toBe(net.ipAddress);
  });
});
