/**
 * The build's resource group and network: a temporary group (or an existing one, which is only
 * checked), a virtual network with one subnet, a network security group whose only added rule lets
 * TCP 22 in from the builder's address, a Standard static public IP and a NIC tying them together.
 * Each is in the ledger before its create call returns.
 */
import { KilnError } from '../../core/errors.js';
import { isOpenToAll } from '../builder-address.js';
import { arm, armGet } from './errors.js';
import { groupId, KIND } from './ids.js';
import type { AzureStep } from './step.js';

export const VNET_PREFIX = '10.200.0.0/16';
export const SUBNET_PREFIX = '10.200.0.0/24';
export const SSH_RULE = 'allow-ssh-from-builder';

/** Creates the temporary group, or checks that the existing one is there. */
export async function prepareGroup(s: AzureStep): Promise<void> {
  const { t, c, group } = s;
  const id = groupId(c.subscription, group);
  if (!t.resourceGroup.temporary) {
    const existing = await armGet('reading resource group', id, () => c.resources.resourceGroups.get(group, s.call));
    if (!existing) throw new KilnError('INPUT', `resource group ${group} does not exist in subscription ${c.subscription}`, { field: 'targets.azure.resourceGroup', resource: id });
    s.log(`building in the existing resource group ${group}; every resource is deleted one by one afterwards`);
    return;
  }
  await s.record(KIND.group, group, async () => {
    const made = await arm('creating resource group', id, () => c.resources.resourceGroups.createOrUpdate(group, { location: s.location, tags: s.tags }, s.call));
    return { id: made.id ?? id };
  });
  s.log(`resource group ${group} created in ${s.location}`);
}

export interface BuildNetwork {
  nicId: string;
  publicIpId: string;
  publicIpAddress?: string;
}

/** Virtual network, NSG (SSH from `sshSource` only), public IP and NIC. */
export async function createNetwork(s: AzureStep, sshSource: string): Promise<BuildNetwork> {
  const { t, c, group, location, tags, call } = s;
  const n = t.names;
  if (isOpenToAll(sshSource)) s.log(`WARNING: SSH is open to ${sshSource}, as the plan's sshCidr asks`);

  const vnet = await s.record(KIND.vnet, n.vnet, async () => {
    const made = await arm('creating virtual network', s.id('virtual-network', n.vnet), () =>
      c.network.virtualNetworks.beginCreateOrUpdateAndWait(
        group,
        n.vnet,
        { location, tags, addressSpace: { addressPrefixes: [VNET_PREFIX] }, subnets: [{ name: n.subnet, addressPrefix: SUBNET_PREFIX }] },
        call,
      ),
    );
    return { id: required(made.id, 'virtual network id'), subnetId: made.subnets?.find((x) => x.name === n.subnet)?.id };
  });
  const subnetId = required(vnet.subnetId, `subnet ${n.subnet} of ${vnet.id}`);

  const nsg = await s.record(KIND.nsg, n.nsg, async () => {
    const made = await arm('creating network security group', s.id('network-security-group', n.nsg), () =>
      c.network.networkSecurityGroups.beginCreateOrUpdateAndWait(
        group,
        n.nsg,
        {
          location,
          tags,
          securityRules: [
            {
              name: SSH_RULE,
              description: 'SSH from the kiln builder only, for the length of one build',
              protocol: 'Tcp',
              sourceAddressPrefix: sshSource,
              sourcePortRange: '*',
              destinationAddressPrefix: '*',
              destinationPortRange: '22',
              access: 'Allow',
              direction: 'Inbound',
              priority: 100,
            },
          ],
        },
        call,
      ),
    );
    return { id: required(made.id, 'network security group id') };
  });
  s.log(`NSG ${n.nsg} allows tcp/22 from ${sshSource} only`);

  const ip = await s.record(KIND.publicIp, n.publicIp, async () => {
    const made = await arm('creating public IP', s.id('public-ip', n.publicIp), () =>
      c.network.publicIPAddresses.beginCreateOrUpdateAndWait(
        group,
        n.publicIp,
        { location, tags, sku: { name: 'Standard' }, publicIPAllocationMethod: 'Static', publicIPAddressVersion: 'IPv4' },
        call,
      ),
    );
    return { id: required(made.id, 'public IP id'), address: made.ipAddress };
  });

  const nic = await s.record(KIND.nic, n.nic, async () => {
    const made = await arm('creating network interface', s.id('network-interface', n.nic), () =>
      c.network.networkInterfaces.beginCreateOrUpdateAndWait(
        group,
        n.nic,
        {
          location,
          tags,
          networkSecurityGroup: { id: nsg.id },
          ipConfigurations: [{ name: 'primary', primary: true, subnet: { id: subnetId }, publicIPAddress: { id: ip.id }, privateIPAllocationMethod: 'Dynamic' }],
        },
        call,
      ),
    );
    return { id: required(made.id, 'network interface id') };
  });
  return { nicId: nic.id, publicIpId: ip.id, ...(ip.address ? { publicIpAddress: ip.address } : {}) };
}

/** The public IP's address (static: known once created). */
export async function publicAddress(s: AzureStep): Promise<string> {
  const name = s.t.names.publicIp;
  const ip = await arm('reading public IP', s.id('public-ip', name), () => s.c.network.publicIPAddresses.get(s.group, name, s.call));
  return required(ip.ipAddress, `address of public IP ${name}`);
}

export function required<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null || value === '') throw new KilnError('CLOUD', `Azure returned no ${what}`, { resource: what });
  return value;
}
