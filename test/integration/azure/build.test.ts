import { stat } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ComputeManagementClient } from '@azure/arm-compute';
import { NetworkManagementClient } from '@azure/arm-network';
import { ResourceManagementClient } from '@azure/arm-resources';
import type { AdditionalPolicyConfig } from '@azure/core-client';
import { createHttpHeaders } from '@azure/core-rest-pipeline';
import { STEP_ORDER } from '../../../src/pipeline/build.js';
import type { LedgerEntry } from '../../../src/pipeline/ledger.js';
import { startSshd, type TestSshd } from '../../support/sshd.js';
import { build, captureBodies, live, sourcegraphPlan, startHarness, writes, type Harness } from './harness.js';

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

describe('azure driver: a build through the real pipeline, against the ARM fake', () => {
  test('every step in order; the image and the gallery version replicated to two regions are all that is left', async () => {
    const plan = await sourcegraphPlan('razb0001');
    const { result, ledger, paths } = await build(h, plan);
    expect(result.error).toBeUndefined();
    expect(result.status).toBe('succeeded');
    expect(Object.keys(result.timingsMs)).toEqual([...STEP_ORDER]);
    expect(result.sourceImage).toBe('Canonical:ubuntu-24_04-lts:server:1.0.0');

    // the call sequence: group, network, VM, stop, gallery, image, version, then undo in reverse
    expect(writes(h.fake)).toEqual([
      'resourceGroups.createOrUpdate',
      'virtualNetworks.createOrUpdate',
      'networkSecurityGroups.createOrUpdate',
      'publicIPAddresses.createOrUpdate',
      'networkInterfaces.createOrUpdate',
      'virtualMachines.createOrUpdate',
      'virtualMachines.deallocate',
      'virtualMachines.generalize',
      'resourceGroups.createOrUpdate', // the gallery's group did not exist
      'galleries.createOrUpdate',
      'galleryImages.createOrUpdate',
      'images.createOrUpdate',
      'galleryImageVersions.createOrUpdate',
      'virtualMachines.delete',
      'disks.delete',
      'disks.delete',
      'networkInterfaces.delete',
      'publicIPAddresses.delete',
      'networkSecurityGroups.delete',
      'virtualNetworks.delete',
      'resourceGroups.delete',
    ]);

    // SSH went to the VM's public IP (the fake's loopback address), as the plan's user
    const started = h.machines.started;
    expect(started).toHaveLength(1);
    expect(h.sshTargets).toEqual([`sourcegraph@${started[0]?.address}:22`]);
    expect(started[0]?.sshUser).toBe('sourcegraph');
    expect(started[0]?.sshPublicKey).toMatch(/^ssh-ed25519 AAAA\S+ kiln-razb0001-azure-xs$/);
    expect(sshd.log()).toContain(`Accepted publickey for ${sshd.user}`);
    expect((await stat(paths.build(plan.buildId).sshKey).catch(() => undefined))).toBeUndefined(); // the key file went with the build

    // what is left: the shared gallery and definition, and the artifacts; no temporary group, no disk
    const sub = h.fake.subscriptionId;
    const image = `/subscriptions/${sub}/resourceGroups/sourcegraph-images/providers/Microsoft.Compute/images/sourcegraph-5.2.0-xs-razb0001`;
    const version = `/subscriptions/${sub}/resourceGroups/sourcegraph-images/providers/Microsoft.Compute/galleries/sourcegraph_gallery/images/sourcegraph-xs/versions/5.2.0`;
    expect(live(h.fake)).toEqual({
      'Microsoft.Resources/resourceGroups': [`/subscriptions/${sub}/resourceGroups/sourcegraph-images`],
      'Microsoft.Compute/images': [image],
      'Microsoft.Compute/galleries': [expect.stringMatching(/galleries\/sourcegraph_gallery$/)],
      'Microsoft.Compute/galleries/images': [expect.stringMatching(/images\/sourcegraph-xs$/)],
      'Microsoft.Compute/galleries/images/versions': [version],
    });
    expect(h.fake.inventory().backend.disks).toEqual([]);
    expect(h.fake.inventory().backend.machines).toEqual({});
    expect(h.fake.inventory().operationsInProgress).toBe(0);
    expect(ledger.entries()).toEqual([]);
    expect(result.leftovers).toEqual([]);
    expect(result.artifacts).toEqual([
      { kind: 'azure-managed-image', id: image, name: 'sourcegraph-5.2.0-xs-razb0001', region: 'eastus', disk: 'both' },
      { kind: 'azure-gallery-image-version', id: version, name: 'sourcegraph_gallery/sourcegraph-xs/5.2.0', region: 'eastus', disk: 'both' },
      { kind: 'azure-gallery-image-version', id: version, name: 'sourcegraph_gallery/sourcegraph-xs/5.2.0', region: 'westeurope', disk: 'both' },
    ]);

    // the version: from the managed image, both regions Completed with the plan's replica counts, tagged
    const { credential, options } = h.fake.clientOptions();
    const compute = new ComputeManagementClient(credential, sub, options);
    const v = await compute.galleryImageVersions.get('sourcegraph-images', 'sourcegraph_gallery', 'sourcegraph-xs', '5.2.0', { expand: 'ReplicationStatus' });
    expect(v.storageProfile?.source?.id).toBe(image);
    expect(v.publishingProfile?.targetRegions?.map((r) => [r.name, r.regionalReplicaCount])).toEqual([
      ['eastus', 1],
      ['westeurope', 1],
    ]);
    expect(v.replicationStatus?.summary?.map((r) => [r.region, r.state])).toEqual([
      ['eastus', 'Completed'],
      ['westeurope', 'Completed'],
    ]);
    expect(v.tags).toEqual(plan.tags);
    const img = await compute.images.get('sourcegraph-images', 'sourcegraph-5.2.0-xs-razb0001');
    expect(img.tags).toEqual(plan.tags);
    expect(img.storageProfile?.dataDisks?.map((d) => [d.lun, d.diskSizeGB])).toEqual([[0, 500]]);
    expect(img.storageProfile?.osDisk?.diskSizeGB).toBe(50);
    // shared things carry no run tags, so no sweep by run takes them
    const def = await compute.galleryImages.get('sourcegraph-images', 'sourcegraph_gallery', 'sourcegraph-xs');
    expect(def).toMatchObject({ osType: 'Linux', osState: 'Generalized', identifier: { publisher: 'sourcegraph', offer: 'sourcegraph', sku: 'k3s-xs' } });
    expect(def.tags).toEqual({ 'kiln:definition': 'sourcegraph' });
    const rg = await new ResourceManagementClient(credential, sub, options).resourceGroups.get('sourcegraph-images');
    expect(rg.tags).toEqual({ 'kiln:definition': 'sourcegraph' });
  });

  test('tags on every resource, NSG open to the builder only, disks in the ledger before the VM', async () => {
    const plan = await sourcegraphPlan('razb0002');
    const ops = ['virtualNetworks', 'networkSecurityGroups', 'publicIPAddresses', 'networkInterfaces', 'virtualMachines', 'images', 'galleryImageVersions'].map((g) => `${g}.createOrUpdate`);
    const bodies = captureBodies(h.fake, ['resourceGroups.createOrUpdate', ...ops]);
    let ledgerAtStop: LedgerEntry[] = [];
    const { result } = await build(h, plan, {
      build: (ledger) => ({ onProgress: (e) => e.type === 'step' && e.step === 'stop' && e.status === 'started' && (ledgerAtStop = ledger.entries()) }),
    });
    expect(result.status).toBe('succeeded');
    const [buildGroup] = bodies['resourceGroups.createOrUpdate'] as { location: string; tags: Record<string, string> }[];
    expect(buildGroup).toEqual({ location: 'eastus', tags: plan.tags });
    for (const op of ops) {
      expect(bodies[op], op).toHaveLength(1);
      expect(bodies[op]?.[0], op).toMatchObject({ location: 'eastus', tags: plan.tags });
    }
    expect(plan.tags).toEqual({ 'kiln:run': 'razb0002', 'kiln:build': 'razb0002-azure-xs', 'kiln:definition': 'sourcegraph', 'kiln:version': '5.2.0' });

    // one inbound rule: tcp/22 from the builder's /32 and nothing else
    const nsg = bodies['networkSecurityGroups.createOrUpdate']?.[0] as { properties: { securityRules: { name: string; properties: Record<string, unknown> }[] } };
    expect(nsg.properties.securityRules).toHaveLength(1);
    expect(nsg.properties.securityRules[0]?.properties).toMatchObject({
      protocol: 'Tcp',
      sourceAddressPrefix: '127.0.0.1/32',
      sourcePortRange: '*',
      destinationPortRange: '22',
      access: 'Allow',
      direction: 'Inbound',
    });
    expect(JSON.stringify(nsg)).not.toMatch(/0\.0\.0\.0\/0|"sourceAddressPrefix":"\*"|Internet/);

    // the VM: plan size and image, OS disk from the image, an empty data disk at LUN 0, no password, nothing left on delete
    const vm = bodies['virtualMachines.createOrUpdate']?.[0] as { properties: Record<string, unknown> };
    expect(vm.properties).toMatchObject({
      hardwareProfile: { vmSize: 'Standard_D8as_v5' },
      storageProfile: {
        imageReference: { publisher: 'Canonical', offer: 'ubuntu-24_04-lts', sku: 'server', version: 'latest' },
        osDisk: { name: 'kiln-razb0002-xs-os', createOption: 'FromImage', diskSizeGB: 50, managedDisk: { storageAccountType: 'StandardSSD_LRS' }, deleteOption: 'Delete' },
        dataDisks: [{ lun: 0, name: 'kiln-razb0002-xs-data', createOption: 'Empty', diskSizeGB: 500, managedDisk: { storageAccountType: 'StandardSSD_LRS' }, deleteOption: 'Delete' }],
      },
      osProfile: {
        adminUsername: 'sourcegraph',
        linuxConfiguration: { disablePasswordAuthentication: true, ssh: { publicKeys: [{ path: '/home/sourcegraph/.ssh/authorized_keys', keyData: expect.stringMatching(/^ssh-ed25519 /) }] } },
      },
      networkProfile: { networkInterfaces: [{ properties: { primary: true, deleteOption: 'Delete' } }] },
    });
    expect(JSON.stringify(vm)).not.toMatch(/adminPassword/);

    // the ledger while the VM ran: every resource with its id, the disks before the VM
    expect(ledgerAtStop.map((e) => [e.kind, e.name])).toEqual([
      ['resource-group', 'kiln-razb0002-xs-rg'],
      ['file', expect.stringMatching(/ssh_key$/)],
      ['virtual-network', 'kiln-razb0002-xs-vnet'],
      ['network-security-group', 'kiln-razb0002-xs-nsg'],
      ['public-ip', 'kiln-razb0002-xs-ip'],
      ['network-interface', 'kiln-razb0002-xs-nic'],
      ['disk', 'kiln-razb0002-xs-os'],
      ['disk', 'kiln-razb0002-xs-data'],
      ['virtual-machine', 'kiln-razb0002-xs-vm'],
    ]);
    expect(ledgerAtStop.every((e) => e.id !== undefined && e.role === 'temporary')).toBe(true);
    expect(ledgerAtStop.filter((e) => e.kind !== 'file').every((e) => e.extra?.subscription === h.fake.subscriptionId && e.group === 'kiln-razb0002-xs-rg')).toBe(true);
    expect(ledgerAtStop.find((e) => e.name === 'kiln-razb0002-xs-data')?.id).toMatch(/\/disks\/kiln-razb0002-xs-data$/);
  });

  test('long-running operations are polled at the configured interval until done', async () => {
    h.fake.transitions.setDelays({ 'vm.create': 300, 'vm.deallocate': 200, 'galleryImageVersion.replicate': 150 });
    const polls = () => h.fake.requests.filter((r) => r.operation === 'operations.status').length;
    const { result } = await build(h, await sourcegraphPlan('razb0003'), { driver: { pollIntervalMs: 20 } });
    expect(result.status).toBe('succeeded');
    const fast = polls();
    // 300 + 200 + 2 x 150 ms of waiting at 20 ms between polls: many polls, not one per operation
    expect(fast).toBeGreaterThan(20);

    // the same build with a slow interval polls far less (the interval really is the driver's)
    await h.close();
    h = await startHarness(sshd, { delays: { 'vm.create': 300, 'vm.deallocate': 200, 'galleryImageVersion.replicate': 150 } });
    const slow = await build(h, await sourcegraphPlan('razb0004'), { driver: { pollIntervalMs: 400 } });
    expect(slow.result.status).toBe('succeeded');
    expect(polls()).toBeLessThan(fast / 2);
  });

  test('an existing gallery and definition are used and kept; sshCidr from the plan scopes the NSG', async () => {
    const { credential, options, pollOptions } = h.fake.clientOptions();
    const sub = h.fake.subscriptionId;
    const rm = new ResourceManagementClient(credential, sub, options);
    const compute = new ComputeManagementClient(credential, sub, options);
    await rm.resourceGroups.createOrUpdate('sourcegraph-images', { location: 'eastus', tags: { team: 'images' } });
    await compute.galleries.beginCreateOrUpdateAndWait('sourcegraph-images', 'sourcegraph_gallery', { location: 'eastus' }, pollOptions);
    await compute.galleryImages.beginCreateOrUpdateAndWait(
      'sourcegraph-images',
      'sourcegraph_gallery',
      'sourcegraph-xs',
      { location: 'eastus', osType: 'Linux', osState: 'Generalized', identifier: { publisher: 'sourcegraph', offer: 'sourcegraph', sku: 'k3s-xs' } },
      pollOptions,
    );
    const before = h.fake.liveResourceIds();
    const mark = h.fake.requests.length;
    const bodies = captureBodies(h.fake, ['networkSecurityGroups.createOrUpdate']);
    const plan = await sourcegraphPlan('razb0005', (_t, p) => (p.access.sshCidr = '198.51.100.0/28'));
    const { result } = await build(h, plan, { driver: { builderAddress: async () => expect.fail('the plan names sshCidr; no lookup') } });
    expect(result.status).toBe('succeeded');
    expect(JSON.stringify(bodies['networkSecurityGroups.createOrUpdate'])).toContain('"sourceAddressPrefix":"198.51.100.0/28"');
    expect(writes(h.fake, mark).filter((op) => /^(galleries|galleryImages|resourceGroups)\.createOrUpdate$/.test(op))).toEqual(['resourceGroups.createOrUpdate']); // the build's own group only
    const after = h.fake.liveResourceIds();
    expect(before.every((id) => after.includes(id))).toBe(true);
    const rgId = `/subscriptions/${sub}/resourceGroups/sourcegraph-images/providers/Microsoft.Compute`;
    expect(after.filter((id) => !before.includes(id))).toEqual([
      `${rgId}/galleries/sourcegraph_gallery/images/sourcegraph-xs/versions/5.2.0`,
      `${rgId}/images/sourcegraph-5.2.0-xs-razb0005`,
    ]);
    expect((await rm.resourceGroups.get('sourcegraph-images')).tags).toEqual({ team: 'images' });
  });

  test('in an existing resource group every resource is created there and deleted one by one; the group stays', async () => {
    const { credential, options, pollOptions } = h.fake.clientOptions();
    const rm = new ResourceManagementClient(credential, h.fake.subscriptionId, options);
    await rm.resourceGroups.createOrUpdate('builds', { location: 'eastus' });
    const network = new NetworkManagementClient(credential, h.fake.subscriptionId, options);
    await network.publicIPAddresses.beginCreateOrUpdateAndWait('builds', 'someone-elses-ip', { location: 'eastus', sku: { name: 'Standard' } }, pollOptions);
    const before = h.fake.liveResourceIds();
    const mark = h.fake.requests.length;
    const plan = await sourcegraphPlan('razb0006', (t) => {
      t.resourceGroup = { name: 'builds', temporary: false };
      t.publish.gallery = undefined;
    });
    const { result } = await build(h, plan);
    expect(result.status).toBe('succeeded');
    expect(writes(h.fake, mark)).not.toContain('resourceGroups.createOrUpdate');
    expect(writes(h.fake, mark)).not.toContain('resourceGroups.delete');
    expect(writes(h.fake, mark).filter((op) => op.endsWith('.delete'))).toEqual([
      'virtualMachines.delete',
      'disks.delete',
      'disks.delete',
      'networkInterfaces.delete',
      'publicIPAddresses.delete',
      'networkSecurityGroups.delete',
      'virtualNetworks.delete',
    ]);
    const image = `/subscriptions/${h.fake.subscriptionId}/resourceGroups/builds/providers/Microsoft.Compute/images/sourcegraph-5.2.0-xs-razb0006`;
    expect(h.fake.liveResourceIds()).toEqual([...before, image].sort());
    expect(result.artifacts.map((a) => a.kind)).toEqual(['azure-managed-image']);
  });

  test('a managed image without a gallery keeps the temporary group, emptied of everything else', async () => {
    const plan = await sourcegraphPlan('razb0007', (t) => (t.publish.gallery = undefined));
    const { result, ledger } = await build(h, plan);
    expect(result.status).toBe('succeeded');
    const rg = `/subscriptions/${h.fake.subscriptionId}/resourceGroups/kiln-razb0007-xs-rg`;
    expect(live(h.fake)).toEqual({
      'Microsoft.Resources/resourceGroups': [rg],
      'Microsoft.Compute/images': [`${rg}/providers/Microsoft.Compute/images/sourcegraph-5.2.0-xs-razb0007`],
    });
    expect(ledger.entries()).toEqual([]);
  });

  test('a gallery version straight from the VM when no managed image is wanted', async () => {
    const bodies = captureBodies(h.fake, ['galleryImageVersions.createOrUpdate']);
    const plan = await sourcegraphPlan('razb0008', (t) => {
      t.publish.managedImage = false;
      const g = t.publish.gallery;
      if (g) g.replicationRegions = [{ region: 'westeurope', replicas: 3 }];
    });
    const { result } = await build(h, plan);
    expect(result.status).toBe('succeeded');
    const body = JSON.stringify(bodies['galleryImageVersions.createOrUpdate']);
    expect(body).toMatch(/"source":\{"virtualMachineId":"[^"]+\/virtualMachines\/kiln-razb0008-xs-vm"\}/);
    // the gallery's own region is added to the plan's target regions, as ARM requires
    expect(body).toContain('"targetRegions":[{"name":"eastus","regionalReplicaCount":1},{"name":"westeurope","regionalReplicaCount":3}]');
    expect(result.artifacts.map((a) => [a.kind, a.region])).toEqual([
      ['azure-gallery-image-version', 'eastus'],
      ['azure-gallery-image-version', 'westeurope'],
    ]);
    expect(live(h.fake)['Microsoft.Compute/images']).toBeUndefined();
  });

  test('readers get a Reader role assignment on the version', async () => {
    const reader = '11111111-2222-4333-8444-555555555555';
    const assignments: { method: string; url: string; body: unknown }[] = [];
    const rbac = fakeRbac(assignments);
    const plan = await sourcegraphPlan('razb0009', (t) => t.publish.gallery?.readers.push(reader));
    const { result } = await build(h, plan, { driver: { clientOptions: { ...h.fake.clientOptions().options, additionalPolicies: [rbac] } } });
    expect(result.status).toBe('succeeded');
    const sub = h.fake.subscriptionId;
    const version = `/subscriptions/${sub}/resourceGroups/sourcegraph-images/providers/Microsoft.Compute/galleries/sourcegraph_gallery/images/sourcegraph-xs/versions/5.2.0`;
    expect(assignments).toEqual([
      {
        method: 'PUT',
        url: expect.stringMatching(new RegExp(`^${h.fake.url}${version}/providers/Microsoft.Authorization/roleAssignments/[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\\?api-version=2022-04-01$`)),
        body: { properties: { roleDefinitionId: `/subscriptions/${sub}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7`, principalId: reader } },
      },
    ]);
  });

  test('a gallery version that exists already is never replaced, and survives the failed build', async () => {
    const first = await build(h, await sourcegraphPlan('razb0010'));
    expect(first.result.status).toBe('succeeded');
    const before = h.fake.liveResourceIds();
    const second = await build(h, await sourcegraphPlan('razb0011'));
    expect(second.result.status).toBe('failed');
    expect(second.result.failedStep).toBe('capture');
    expect(second.result.error).toMatchObject({ code: 'CLOUD', context: { code: 'GalleryImageVersionExists', resource: expect.stringMatching(/versions\/5\.2\.0$/) } });
    expect(second.result.leftovers).toEqual([]);
    expect(h.fake.liveResourceIds()).toEqual(before);
  });
});

/** A pipeline policy answering role assignment calls, which the ARM fake does not model. */
function fakeRbac(seen: { method: string; url: string; body: unknown }[]): AdditionalPolicyConfig {
  return {
    position: 'perCall',
    policy: {
      name: 'fake-rbac',
      sendRequest: async (request, next) => {
        if (!/\/providers\/Microsoft\.Authorization\/roleAssignments\//i.test(request.url)) return next(request);
        const body = typeof request.body === 'string' ? (JSON.parse(request.body) as unknown) : undefined;
        seen.push({ method: request.method, url: request.url, body });
        const path = new URL(request.url).pathname;
        const reply = request.method === 'DELETE' ? undefined : { id: path, name: path.split('/').pop(), type: 'Microsoft.Authorization/roleAssignments', ...(body as object) };
        return { request, status: reply ? 201 : 200, headers: createHttpHeaders({ 'content-type': 'application/json' }), bodyAsText: reply ? JSON.stringify(reply) : '' };
      },
    },
  };
}
