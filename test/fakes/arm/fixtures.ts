/**
 * Test helpers for the ARM fake's own tests: the three SDK clients wired to a fake, the network
 * a build VM needs, a build VM, and a raw HTTPS request for what the SDKs will not send.
 */
import { request } from 'node:https';
import { ComputeManagementClient, type VirtualMachine } from '@azure/arm-compute';
import { NetworkManagementClient } from '@azure/arm-network';
import { ResourceManagementClient } from '@azure/arm-resources';
import type { ArmFake } from './index.js';

export const LOCATION = 'westeurope';
export const SSH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKilnFakeKeyForTestsOnly kiln@test';

export interface Clients {
  resources: ResourceManagementClient;
  network: NetworkManagementClient;
  compute: ComputeManagementClient;
  poll: { updateIntervalInMs: number };
}

export function clients(fake: ArmFake, opts: { maxRetries?: number } = {}): Clients {
  const { credential, subscriptionId, options, pollOptions } = fake.clientOptions(opts);
  return {
    resources: new ResourceManagementClient(credential, subscriptionId, options),
    network: new NetworkManagementClient(credential, subscriptionId, options),
    compute: new ComputeManagementClient(credential, subscriptionId, options),
    poll: pollOptions,
  };
}

export interface BuildNetwork {
  subnetId: string;
  nsgId: string;
  ipId: string;
  ipAddress: string;
  nicId: string;
}

/** Virtual network + subnet, NSG allowing SSH from one address, public IP and NIC, named `<prefix>-*`. */
export async function buildNetwork(c: Clients, rg: string, prefix: string, tags: Record<string, string> = {}): Promise<BuildNetwork> {
  const vnet = await c.network.virtualNetworks.beginCreateOrUpdateAndWait(
    rg,
    `${prefix}-vnet`,
    { location: LOCATION, tags, addressSpace: { addressPrefixes: ['10.20.0.0/16'] }, subnets: [{ name: 'build', addressPrefix: '10.20.1.0/24' }] },
    c.poll,
  );
  const nsg = await c.network.networkSecurityGroups.beginCreateOrUpdateAndWait(
    rg,
    `${prefix}-nsg`,
    {
      location: LOCATION,
      tags,
      securityRules: [
        {
          name: 'ssh-from-builder',
          protocol: 'Tcp',
          sourceAddressPrefix: '203.0.113.7/32',
          sourcePortRange: '*',
          destinationAddressPrefix: '*',
          destinationPortRange: '22',
          access: 'Allow',
          direction: 'Inbound',
          priority: 100,
        },
      ],
    },
    c.poll,
  );
  const ip = await c.network.publicIPAddresses.beginCreateOrUpdateAndWait(
    rg,
    `${prefix}-ip`,
    { location: LOCATION, tags, sku: { name: 'Standard' }, publicIPAllocationMethod: 'Static' },
    c.poll,
  );
  const subnetId = vnet.subnets?.[0]?.id ?? '';
  const nic = await c.network.networkInterfaces.beginCreateOrUpdateAndWait(
    rg,
    `${prefix}-nic`,
    {
      location: LOCATION,
      tags,
      networkSecurityGroup: { id: nsg.id },
      ipConfigurations: [{ name: 'primary', subnet: { id: subnetId }, publicIPAddress: { id: ip.id } }],
    },
    c.poll,
  );
  return { subnetId, nsgId: nsg.id ?? '', ipId: ip.id ?? '', ipAddress: ip.ipAddress ?? '', nicId: nic.id ?? '' };
}

/** A build VM: marketplace image (or `imageId`), 40 GB OS disk deleted with the VM, 64 GB data disk kept. */
export function vmSpec(nicId: string, opts: { imageId?: string; tags?: Record<string, string>; nicDelete?: boolean } = {}): VirtualMachine {
  return {
    location: LOCATION,
    tags: opts.tags ?? {},
    hardwareProfile: { vmSize: 'Standard_D2s_v5' },
    storageProfile: {
      imageReference: opts.imageId ? { id: opts.imageId } : { publisher: 'Canonical', offer: 'ubuntu-24_04-lts', sku: 'server', version: 'latest' },
      osDisk: { createOption: 'FromImage', diskSizeGB: 40, managedDisk: { storageAccountType: 'Premium_LRS' }, deleteOption: 'Delete' },
      dataDisks: opts.imageId ? [] : [{ lun: 0, createOption: 'Empty', diskSizeGB: 64, managedDisk: { storageAccountType: 'StandardSSD_LRS' } }],
    },
    osProfile: {
      computerName: 'kiln-build',
      adminUsername: 'kiln',
      linuxConfiguration: {
        disablePasswordAuthentication: true,
        ssh: { publicKeys: [{ path: '/home/kiln/.ssh/authorized_keys', keyData: SSH_KEY }] },
      },
    },
    networkProfile: { networkInterfaces: [{ id: nicId, primary: true, deleteOption: opts.nicDelete ? 'Delete' : 'Detach' }] },
  };
}

/** Power / OS state codes from a VM's instance view, e.g. ['PowerState/running']. */
export async function vmStates(c: Clients, rg: string, vm: string): Promise<string[]> {
  const got = await c.compute.virtualMachines.get(rg, vm, { expand: 'instanceView' });
  return (got.instanceView?.statuses ?? []).map((s) => s.code ?? '').filter((code) => !code.startsWith('ProvisioningState/'));
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

/** One HTTPS request to the fake, trusting its certificate; `auth: false` drops the bearer token. */
export function raw(fake: ArmFake, method: string, pathAndQuery: string, body?: unknown, auth = true): Promise<RawResponse> {
  const target = new URL(pathAndQuery, fake.url);
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      {
        method,
        ca: fake.ca,
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: 'Bearer raw-test-token' } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? (JSON.parse(text) as unknown) : undefined });
        });
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
