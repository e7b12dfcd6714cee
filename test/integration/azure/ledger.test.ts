import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ComputeManagementClient } from '@azure/arm-compute';
import { NetworkManagementClient } from '@azure/arm-network';
import { ResourceManagementClient } from '@azure/arm-resources';
import { Ledger } from '../../../src/pipeline/ledger.js';
import { newRunId } from '../../../src/pipeline/run-id.js';
import { undo } from '../../../src/pipeline/undo.js';
import { AzureDriver } from '../../../src/targets/azure/driver.js';
import { createDriver } from '../../../src/targets/drivers.js';
import { ArmError } from '../../fakes/arm/index.js';
import { startSshd, type TestSshd } from '../../support/sshd.js';
import { build, GALLERY_TYPES, sourcegraphPlan, startHarness, type Harness } from './harness.js';

let sshd: TestSshd;
let h: Harness;
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(() => sshd.dispose());
beforeEach(async () => {
  h = await startHarness(sshd);
});
afterEach(() => h.close());

/** A driver that knows nothing but how to reach ARM: no plan, no subscription. */
const constant = <T>(value: T) => () => value;

async function freshDriver(): Promise<AzureDriver> {
  const { credential, options, pollOptions } = h.fake.clientOptions();
  return (await createDriver('azure', { azure: { credential, clientOptions: options, pollIntervalMs: pollOptions.updateIntervalInMs } })) as AzureDriver;
}

describe('azure driver: deleting from the ledger alone', () => {
  test('what an aborted build kept is deleted by a fresh driver reading the ledger file', async () => {
    h.fake.intercept('galleryImageVersion.create', () => new ArmError(409, 'GalleryImageVersionQuotaExceeded', 'quota'));
    const plan = await sourcegraphPlan('razl0001');
    const { result, paths } = await build(h, plan, { build: { onError: 'abort' } });
    expect(result.status).toBe('failed');
    expect(result.failedStep).toBe('capture');
    expect(result.leftovers.map((e) => [e.kind, e.id === undefined ? 'intent' : 'created'])).toEqual([
      ['resource-group', 'created'],
      ['file', 'created'],
      ['virtual-network', 'created'],
      ['network-security-group', 'created'],
      ['public-ip', 'created'],
      ['network-interface', 'created'],
      ['disk', 'created'],
      ['disk', 'created'],
      ['virtual-machine', 'created'],
      ['image', 'created'],
      ['gallery-image-version', 'intent'], // the create failed: known by name only
    ]);
    expect(h.fake.inventory().resources['Microsoft.Compute/galleries/images/versions']).toHaveLength(1); // Failed, but there

    const ledger = await Ledger.open(paths.ledger, plan.runId);
    const left = await undo(ledger, constant(await freshDriver()), { log: () => undefined });
    expect(left).toEqual([]);
    expect(ledger.entries()).toEqual([]);
    expect(Object.keys(h.fake.inventory().resources).sort()).toEqual(['Microsoft.Resources/resourceGroups', ...GALLERY_TYPES].sort());
    expect(h.fake.inventory().backend).toEqual({ disks: [], snapshots: [], machines: {} });
  });

  test('intents (name and group only) are deleted by name; what is gone already is success', async () => {
    const { credential, subscriptionId, options, pollOptions } = h.fake.clientOptions();
    const rm = new ResourceManagementClient(credential, subscriptionId, options);
    const network = new NetworkManagementClient(credential, subscriptionId, options);
    const compute = new ComputeManagementClient(credential, subscriptionId, options);
    await rm.resourceGroups.createOrUpdate('kept-group', { location: 'eastus' });
    const ip = await network.publicIPAddresses.beginCreateOrUpdateAndWait('kept-group', 'kiln-x-ip', { location: 'eastus', sku: { name: 'Standard' } }, pollOptions);
    const nsg = await network.networkSecurityGroups.beginCreateOrUpdateAndWait('kept-group', 'kiln-x-nsg', { location: 'eastus' }, pollOptions);
    const vnet = await network.virtualNetworks.beginCreateOrUpdateAndWait(
      'kept-group',
      'kiln-x-vnet',
      { location: 'eastus', addressSpace: { addressPrefixes: ['10.1.0.0/16'] }, subnets: [{ name: 'builder', addressPrefix: '10.1.0.0/24' }] },
      pollOptions,
    );
    const nic = await network.networkInterfaces.beginCreateOrUpdateAndWait(
      'kept-group',
      'kiln-x-nic',
      { location: 'eastus', networkSecurityGroup: { id: nsg.id }, ipConfigurations: [{ name: 'primary', subnet: { id: vnet.subnets?.[0]?.id }, publicIPAddress: { id: ip.id } }] },
      pollOptions,
    );
    await compute.virtualMachines.beginCreateOrUpdateAndWait(
      'kept-group',
      'kiln-x-vm',
      {
        location: 'eastus',
        hardwareProfile: { vmSize: 'Standard_D2s_v5' },
        storageProfile: {
          imageReference: { publisher: 'Canonical', offer: 'ubuntu-24_04-lts', sku: 'server', version: 'latest' },
          osDisk: { name: 'kiln-x-os', createOption: 'FromImage' },
          dataDisks: [{ lun: 0, name: 'kiln-x-data', createOption: 'Empty', diskSizeGB: 10 }], // kept when the VM goes
        },
        osProfile: { adminUsername: 'kiln', linuxConfiguration: { disablePasswordAuthentication: true, ssh: { publicKeys: [{ path: '/home/kiln/.ssh/authorized_keys', keyData: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKilnFakeKeyForTestsOnly x' }] } } },
        networkProfile: { networkInterfaces: [{ id: nic.id }] },
      },
      pollOptions,
    );

    const ledger = await Ledger.open(`${h.stateDir}/intents.json`, 'rx');
    const intent = (kind: string, name: string) => ledger.intend({ build: 'rx-azure-xs', target: 'azure', role: 'temporary', kind, name, group: 'kept-group', extra: { subscription: subscriptionId } });
    for (const [kind, name] of [
      ['virtual-network', 'kiln-x-vnet'],
      ['network-security-group', 'kiln-x-nsg'],
      ['public-ip', 'kiln-x-ip'],
      ['network-interface', 'kiln-x-nic'],
      ['disk', 'kiln-x-os'],
      ['disk', 'kiln-x-data'],
      ['virtual-machine', 'kiln-x-vm'],
      ['image', 'kiln-x-never-made'],
      ['gallery-image-version', 'no_gallery/def/1.0.0'],
    ] as const) {
      await intent(kind, name);
    }
    const lines: string[] = [];
    expect(await undo(ledger, constant(await freshDriver()), { log: (l) => lines.push(l) })).toEqual([]);
    expect(h.fake.liveResourceIds()).toEqual([`/subscriptions/${subscriptionId}/resourceGroups/kept-group`]);
    expect(h.fake.inventory().backend).toEqual({ disks: [], snapshots: [], machines: {} });

    // again, with the group gone too: ResourceGroupNotFound is success
    await rm.resourceGroups.beginDeleteAndWait('kept-group', pollOptions);
    await intent('virtual-machine', 'kiln-x-vm');
    await intent('resource-group', 'kept-group');
    expect(await undo(ledger, constant(await freshDriver()), { log: () => undefined })).toEqual([]);
  });

  test('a delete refused while a dependant lets go is retried; other refusals name the ARM code and resource', async () => {
    const { credential, subscriptionId, options, pollOptions } = h.fake.clientOptions();
    const network = new NetworkManagementClient(credential, subscriptionId, options);
    await new ResourceManagementClient(credential, subscriptionId, options).resourceGroups.createOrUpdate('g', { location: 'eastus' });
    const nsg = await network.networkSecurityGroups.beginCreateOrUpdateAndWait('g', 'n', { location: 'eastus' }, pollOptions);
    h.fake.failNext('networkSecurityGroups.delete', new ArmError(400, 'InUseNetworkSecurityGroupCannotBeDeleted', 'in use by a NIC being deleted'), 2);
    const entry = { seq: 1, build: 'b', target: 'azure' as const, kind: 'network-security-group', name: 'n', id: nsg.id, role: 'temporary' as const, createdAt: '' };
    const log: string[] = [];
    await (await freshDriver()).destroy(entry, { log: (l) => log.push(l), signal: AbortSignal.timeout(30_000) });
    expect(h.fake.requests.filter((r) => r.operation === 'networkSecurityGroups.delete').map((r) => r.status)).toEqual([400, 400, 202]);
    expect(log.filter((l) => l.includes('not deletable yet'))).toHaveLength(2);

    const ip = await network.publicIPAddresses.beginCreateOrUpdateAndWait('g', 'ip', { location: 'eastus' }, pollOptions);
    h.fake.failNext('publicIPAddresses.delete', new ArmError(409, 'ScopeLocked', 'locked'));
    const err = await (await freshDriver())
      .destroy({ ...entry, kind: 'public-ip', name: 'ip', id: ip.id }, { log: () => undefined, signal: AbortSignal.timeout(30_000) })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CLOUD', context: { code: 'ScopeLocked', resource: ip.id } });
    await expect((await freshDriver()).destroy({ ...entry, kind: 'load-balancer' }, { log: () => undefined, signal: AbortSignal.timeout(1_000) })).rejects.toMatchObject({ code: 'INTERNAL' });
  });

  test('listTagged finds the temporary resources of a run by tag, never its image, version or a group holding an image', async () => {
    const runId = newRunId();
    const preempt = h.fake.intercept('virtualMachines.deallocate', () => new ArmError(409, 'OperationPreempted', 'preempted'));
    const plan = await sourcegraphPlan(runId);
    const { result } = await build(h, plan, { build: { onError: 'abort' } });
    expect(result.failedStep).toBe('stop');
    const driver = new AzureDriver({ ...h.driverOptions() });
    const found = await driver.listTagged({ signal: AbortSignal.timeout(10_000) });
    expect(found.map((r) => [r.kind, r.name]).sort()).toEqual(
      [
        ['resource-group', `kiln-${runId}-xs-rg`],
        ['virtual-network', `kiln-${runId}-xs-vnet`],
        ['network-security-group', `kiln-${runId}-xs-nsg`],
        ['public-ip', `kiln-${runId}-xs-ip`],
        ['network-interface', `kiln-${runId}-xs-nic`],
        ['virtual-machine', `kiln-${runId}-xs-vm`],
      ].sort(),
    );
    expect(found.every((r) => r.runId === runId && r.build === plan.buildId && r.createdAt !== undefined && Math.abs(Date.parse(r.createdAt) - Date.now()) < 60_000)).toBe(true);
    // deleting what was found, in the sweep's order, leaves nothing
    for (const kind of ['virtual-machine', 'network-interface', 'public-ip', 'network-security-group', 'virtual-network', 'resource-group']) {
      for (const r of found.filter((x) => x.kind === kind)) await driver.destroy({ ...r, seq: 0, role: 'temporary', createdAt: '' }, { log: () => undefined, signal: AbortSignal.timeout(30_000) });
    }
    expect(h.fake.inventory().resources).toEqual({});

    // a kept group holding the managed image is marked and left alone
    preempt();
    const kept = await sourcegraphPlan(newRunId(), (t) => (t.publish.gallery = undefined));
    expect((await build(h, kept)).result.status).toBe('succeeded');
    expect(await driver.listTagged({ signal: AbortSignal.timeout(10_000) })).toEqual([]);
    expect(h.fake.inventory().resources['Microsoft.Compute/images']).toHaveLength(1);
  });
});
