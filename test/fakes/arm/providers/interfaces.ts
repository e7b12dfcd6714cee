/**
 * Microsoft.Network, part 2: public IP addresses and network interfaces.
 *
 * A public IP's `ipAddress` is a distinct loopback address (from `LoopbackAddresses`), so a
 * machine backend can make the VM behind it reachable on port 22 of that address. A NIC refers to
 * a subnet, optionally a public IP and an NSG; references must exist (400 InvalidResourceReference)
 * and be in the NIC's region. While a NIC refers to a public IP, deleting the IP fails
 * (PublicIPAddressInUse); while a VM refers to a NIC, deleting the NIC fails (NicInUse).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ArmError, armErrors } from '../errors.js';
import {
  arr,
  num,
  obj,
  props,
  refId,
  requireLocation,
  sameId,
  str,
  tagsOf,
  trackedJson,
  newRecord,
  type Core,
  type Json,
  type ResourceKind,
} from '../kinds.js';
import type { ResourceRecord } from '../state.js';
import { NETWORK_API_VERSIONS, T, ipConfigs, ipConfigsReferencing, networkDelete, networkPut } from './network.js';

/** The VM (if any) whose networkProfile refers to `nicId`. */
export function vmUsingNic(core: Core, nicId: string): ResourceRecord | undefined {
  return core.state
    .list({ type: T.vm })
    .find((vm) => arr(obj(vm.properties.networkProfile).networkInterfaces).some((n) => sameId(str(n.id), nicId)));
}

const publicIpOf = (c: Json): string | undefined => refId(c.publicIPAddress);

export function interfaceKinds(core: Core): ResourceKind[] {
  const ip: ResourceKind = {
    type: T.ip,
    operationGroup: 'publicIPAddresses',
    apiVersions: NETWORK_API_VERSIONS,
    tracked: true,
    purgeOrder: 60,
    serialize: (rec) => {
      const json = trackedJson(rec);
      const users = ipConfigsReferencing(core, rec.id, publicIpOf);
      if (users[0]) (json.properties as Json).ipConfiguration = { id: users[0] };
      return json;
    },
    put: (ctx, ref) => {
      core.state.requireGroup(ref.resourceGroup, true);
      const location = requireLocation(ctx.body);
      const existing = core.state.get(ref.id);
      const sku = obj(ctx.body.sku);
      const skuName = str(sku.name) ?? 'Standard';
      if (!['Basic', 'Standard'].includes(skuName)) throw armErrors.invalidParameter(`Public IP SKU '${skuName}' is not supported.`, 'sku.name');
      const p = props(ctx.body);
      const method = str(p.publicIPAllocationMethod) ?? (skuName === 'Standard' ? 'Static' : 'Dynamic');
      let ipAddress = existing?.properties.ipAddress as string | undefined;
      if (!ipAddress) {
        try {
          ipAddress = core.addresses.allocate();
        } catch (e) {
          throw new ArmError(400, 'PublicIPCountLimitReached', `Cannot create more public IP addresses: ${(e as Error).message}.`);
        }
      }
      const properties: Json = {
        publicIPAllocationMethod: method,
        publicIPAddressVersion: 'IPv4',
        ipAddress,
        idleTimeoutInMinutes: num(p.idleTimeoutInMinutes) ?? 4,
        ipTags: [],
        resourceGuid: existing?.properties.resourceGuid ?? randomUUID(),
      };
      const label = str(obj(p.dnsSettings).domainNameLabel);
      if (label) properties.dnsSettings = { domainNameLabel: label, fqdn: `${label}.${location}.cloudapp.azure.com` };
      const rec = newRecord(ref, {
        location,
        tags: tagsOf(ctx.body),
        sku: { name: skuName, tier: str(sku.tier) ?? 'Regional' },
        tracked: true,
        internal: undefined,
        properties,
      });
      return networkPut(core, ctx, ip, rec, Boolean(existing));
    },
    delete: (ctx, rec) => {
      const users = ipConfigsReferencing(core, rec.id, publicIpOf);
      if (users.length) {
        throw armErrors.badRequest(
          'PublicIPAddressInUse',
          `Public IP address ${rec.id} can not be deleted since it is still allocated to resource ${users.join(', ')}. ` +
            'In order to delete the public IP, disassociate/detach the Public IP address from the resource.',
        );
      }
      return networkDelete(core, ctx, rec);
    },
  };

  const nic: ResourceKind = {
    type: T.nic,
    operationGroup: 'networkInterfaces',
    apiVersions: NETWORK_API_VERSIONS,
    tracked: true,
    purgeOrder: 20,
    serialize: (rec) => {
      const json = trackedJson(rec);
      const p = json.properties as Json;
      for (const c of arr(p.ipConfigurations)) (c.properties as Json).provisioningState = rec.properties.provisioningState;
      const vm = vmUsingNic(core, rec.id);
      if (vm) p.virtualMachine = { id: vm.id };
      return json;
    },
    put: (ctx, ref) => {
      core.state.requireGroup(ref.resourceGroup, true);
      const location = requireLocation(ctx.body);
      const existing = core.state.get(ref.id);
      const p = props(ctx.body);
      const wanted = arr(p.ipConfigurations);
      if (wanted.length === 0) throw armErrors.invalidParameter('A network interface needs at least one IP configuration.', 'ipConfigurations');
      const sameRegion = (target: ResourceRecord | undefined, id: string): ResourceRecord => {
        if (!target || target.location !== location) throw armErrors.invalidReference(id, ref.id);
        return target;
      };
      const previous = existing ? ipConfigs(existing) : [];
      const configs = wanted.map((c, i) => {
        const name = str(c.name) ?? `ipconfig${i + 1}`;
        const cp = props(c);
        const subnetId = refId(cp.subnet);
        if (!subnetId) throw armErrors.invalidParameter(`IP configuration ${name} must refer to a subnet.`, 'subnet');
        const subnet = sameRegion(core.state.get(subnetId), subnetId);
        const out: Json = {
          id: `${ref.id}/ipConfigurations/${name}`,
          name,
          type: 'Microsoft.Network/networkInterfaces/ipConfigurations',
          properties: {} as Json,
        };
        const before = previous.find((x) => x.name === name);
        const beforeIp = before && sameId(refId(props(before).subnet), subnet.id) ? str(props(before).privateIPAddress) : undefined;
        const q: Json = {
          privateIPAddress: beforeIp ?? allocatePrivateIp(core, subnet),
          privateIPAllocationMethod: 'Dynamic',
          privateIPAddressVersion: 'IPv4',
          subnet: { id: subnet.id },
          primary: i === 0,
        };
        const pipId = publicIpOf(cp);
        if (pipId) {
          const pip = sameRegion(core.state.get(pipId), pipId);
          const others = ipConfigsReferencing(core, pip.id, publicIpOf).filter((id) => !id.toLowerCase().startsWith(ref.id.toLowerCase() + '/'));
          if (others.length) {
            throw armErrors.badRequest('PublicIPAddressInUse', `Public IP address ${pip.id} is already allocated to resource ${others.join(', ')}.`);
          }
          q.publicIPAddress = { id: pip.id };
        }
        out.properties = q;
        return out;
      });
      const properties: Json = {
        ipConfigurations: configs,
        enableAcceleratedNetworking: p.enableAcceleratedNetworking === true,
        enableIPForwarding: false,
        nicType: 'Standard',
        macAddress: existing?.properties.macAddress ?? macAddress(),
        resourceGuid: existing?.properties.resourceGuid ?? randomUUID(),
      };
      const nsgId = refId(p.networkSecurityGroup);
      if (nsgId) properties.networkSecurityGroup = { id: sameRegion(core.state.get(nsgId), nsgId).id };
      const rec = newRecord(ref, { location, tags: tagsOf(ctx.body), tracked: true, internal: undefined, properties });
      return networkPut(core, ctx, nic, rec, Boolean(existing));
    },
    delete: (ctx, rec) => {
      const vm = vmUsingNic(core, rec.id);
      if (vm) {
        throw armErrors.badRequest(
          'NicInUse',
          `Network Interface ${rec.id} is used by existing resource ${vm.id}. ` +
            'In order to delete the network interface, it must be dissociated from the resource. To learn more, see aka.ms/deletenic.',
        );
      }
      return networkDelete(core, ctx, rec);
    },
  };

  return [ip, nic];
}

function allocatePrivateIp(core: Core, subnet: ResourceRecord): string {
  const [base = '10.0.0.0', bits = '24'] = String(subnet.properties.addressPrefix).split('/');
  const start = base.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(bits));
  const used = new Set(
    core.state
      .list({ type: T.nic })
      .flatMap(ipConfigs)
      .filter((c) => sameId(refId(props(c).subnet), subnet.id))
      .map((c) => str(props(c).privateIPAddress)),
  );
  // Azure reserves the first four addresses and the last one of every subnet.
  for (let i = 4; i < size - 1; i++) {
    const n = start + i;
    const ip = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
    if (!used.has(ip)) return ip;
  }
  throw armErrors.badRequest('SubnetIsFull', `Subnet ${subnet.id} has no free addresses.`);
}

function macAddress(): string {
  return [...randomBytes(6)].map((b, i) => (i === 0 ? (b & 0xfe) | 0x02 : b).toString(16).padStart(2, '0').toUpperCase()).join('-');
}
