/**
 * The Azure target end to end: `kiln build images/sourcegraph.yaml --target azure --size xs`
 * through the CLI against the ARM fake backed by QEMU VMs, provisioning for real from the stand-in
 * artifact server; then a VM created from the gallery image version boots and is checked over SSH.
 * kiln finds the fake through KILN_AZURE_ENDPOINT (trusting its certificate via NODE_EXTRA_CA_CERTS)
 * and its credentials through DefaultAzureCredential's Azure CLI credential, answered by a stand-in
 * `az` on the PATH.
 */
import { ComputeManagementClient } from '@azure/arm-compute';
import { NetworkManagementClient } from '@azure/arm-network';
import { ResourceManagementClient } from '@azure/arm-resources';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, type SshSession } from '../../src/ssh/index.js';
import { LoopbackAddresses } from '../fakes/common/machines.js';
import { startArmFake, type ArmFake } from '../fakes/arm/index.js';
import { DEFAULT_VM_SIZES } from '../fakes/arm/providers/compute-common.js';
import { checkAppliance, connectToInstance, expectCleanSuccess, startCloudWorld, type BuildRun, type CloudWorld } from './support/cloud-world.js';

const isRoot = process.getuid?.() === 0;
const TOKEN = 'kiln-az-cli-token';
const USER = 'sourcegraph';
const LOCATION = 'eastus';

describe.skipIf(!isRoot)('kiln build --target azure against the VM-backed ARM fake, then booting the image', () => {
  let world: CloudWorld;
  let fake: ArmFake;
  let run: BuildRun;
  let session: SshSession | undefined;

  beforeAll(async () => {
    world = await startCloudWorld('azure');
    fake = await startArmFake({
      machines: world.machines,
      token: TOKEN,
      addresses: new LoopbackAddresses('127.0.30.'),
      vmSizes: { ...DEFAULT_VM_SIZES, Standard_D8as_v5: { cpus: 8, memoryMiB: 32768 } },
    });
    const ca = path.join(world.work, 'arm-fake-ca.pem');
    await writeFile(ca, fake.ca);
    run = await world.build('azure', {
      KILN_AZURE_ENDPOINT: fake.url,
      NODE_EXTRA_CA_CERTS: ca,
      AZURE_SUBSCRIPTION_ID: fake.subscriptionId,
      AZURE_TOKEN_CREDENTIALS: 'AzureCliCredential',
      KILN_FAKE_AZ_TOKEN: TOKEN,
      PATH: `${path.resolve('test/support/azure-cli')}${path.delimiter}${process.env.PATH ?? ''}`,
    });
    console.log(`azure: kiln build took ${run.seconds}s (${JSON.stringify(run.manifest.builds[0]?.timingsMs)})`);
  });

  afterAll(async () => {
    session?.close();
    await fake?.close();
    await world?.close();
  });

  it('makes the managed image and the gallery version and leaves nothing else behind', async () => {
    const build = await expectCleanSuccess(world, run, 'azure');
    // One managed image, and the gallery version in each replication region of the definition.
    expect(build?.artifacts.map((a) => `${a.kind} ${a.region}`).sort()).toEqual(['azure-gallery-image-version eastus', 'azure-gallery-image-version westeurope', 'azure-managed-image eastus']);
    const live = fake.inventory().resources;
    expect(Object.keys(live).sort()).toEqual(['Microsoft.Compute/galleries', 'Microsoft.Compute/galleries/images', 'Microsoft.Compute/galleries/images/versions', 'Microsoft.Compute/images', 'Microsoft.Resources/resourceGroups'].sort());
    expect(live['Microsoft.Resources/resourceGroups']).toEqual([expect.stringMatching(/\/resourceGroups\/sourcegraph-images$/)]);
  });

  it('boots a VM of the gallery version: first boot deploys, versions pinned, data on the LUN 0 disk', async () => {
    const version = run.manifest.builds[0]?.artifacts.find((a) => a.kind === 'azure-gallery-image-version');
    expect(version?.id).toMatch(/\/versions\//);
    const started = Date.now();
    const { credential, subscriptionId, options, pollOptions } = fake.clientOptions({ token: TOKEN });
    const resources = new ResourceManagementClient(credential, subscriptionId, options);
    const network = new NetworkManagementClient(credential, subscriptionId, options);
    const compute = new ComputeManagementClient(credential, subscriptionId, options);
    const group = 'customer';
    const key = generateKeyPair('customer');
    await resources.resourceGroups.createOrUpdate(group, { location: LOCATION });
    try {
      const vnet = await network.virtualNetworks.beginCreateOrUpdateAndWait(group, 'vnet', { location: LOCATION, addressSpace: { addressPrefixes: ['10.1.0.0/16'] }, subnets: [{ name: 'default', addressPrefix: '10.1.0.0/24' }] }, pollOptions);
      const ip = await network.publicIPAddresses.beginCreateOrUpdateAndWait(group, 'ip', { location: LOCATION, sku: { name: 'Standard' }, publicIPAllocationMethod: 'Static' }, pollOptions);
      const nic = await network.networkInterfaces.beginCreateOrUpdateAndWait(group, 'nic', { location: LOCATION, ipConfigurations: [{ name: 'primary', primary: true, subnet: { id: vnet.subnets?.[0]?.id }, publicIPAddress: { id: ip.id } }] }, pollOptions);
      const vm = await compute.virtualMachines.beginCreateOrUpdateAndWait(
        group,
        'appliance',
        {
          location: LOCATION,
          hardwareProfile: { vmSize: 'Standard_D8as_v5' },
          // The image's data disk comes along at its LUN, as Azure adds it when the VM does not list it.
          storageProfile: { imageReference: { id: version?.id }, osDisk: { createOption: 'FromImage', deleteOption: 'Delete' } },
          osProfile: {
            computerName: 'appliance',
            adminUsername: USER,
            linuxConfiguration: { disablePasswordAuthentication: true, ssh: { publicKeys: [{ path: `/home/${USER}/.ssh/authorized_keys`, keyData: key.publicKey }] } },
          },
          networkProfile: { networkInterfaces: [{ id: nic.id, primary: true, deleteOption: 'Delete' }] },
        },
        pollOptions,
      );
      // The driver reads no console on Azure; the fake's serial console shows cloud-init's host keys.
      session = await connectToInstance(world, { address: ip.ipAddress ?? '', user: USER, privateKey: key.privateKey, readConsole: () => fake.consoleOutput(vm.id ?? '') });
      await checkAppliance(session, { dataDevice: /^\/dev\/sd[a-z]$/, user: USER, publicKey: key.publicKey });
      // The data disk is the one at LUN 0, as the image's udev rules name it.
      expect((await session.run('readlink -f /dev/disk/azure/scsi1/lun0')).stdoutTail.trim()).toBe((await session.run('findmnt -n -o SOURCE /mnt/data')).stdoutTail.trim());
      console.log(`azure: VM of the gallery version booted and checked in ${Math.round((Date.now() - started) / 1000)}s`);
    } finally {
      session?.close();
      session = undefined;
      await resources.resourceGroups.beginDeleteAndWait(group, pollOptions);
    }
  });
});
