/**
 * Microsoft.Network, part 1: virtual networks with inline subnets, subnets on their own, network
 * security groups with security rules (inline or on their own), and the shared PUT/DELETE flow of
 * the network provider: PUT answers 201/200 with `provisioningState: Updating` and an
 * `Azure-AsyncOperation` header, DELETE answers 202 with `Azure-AsyncOperation` and `Location`.
 * Dependency errors are synchronous 400s, as ARM's network provider answers them:
 * `InUseSubnetCannotBeDeleted`, `InUseNetworkSecurityGroupCannotBeDeleted`.
 * Back-references (`subnet.ipConfigurations`, `nsg.networkInterfaces`, ...) are computed when
 * served, from the NICs that exist.
 */
import { randomUUID } from 'node:crypto';
import { ArmError, armErrors } from '../errors.js';
import type { Reply } from '../hooks.js';
import {
  arr,
  childJson,
  gone,
  newRecord,
  num,
  obj,
  props,
  refId,
  requireLocation,
  sameId,
  startLro,
  str,
  tagsOf,
  trackedJson,
  type Core,
  type Json,
  type RequestContext,
  type ResourceKind,
  type ResourceRef,
} from '../kinds.js';
import type { ResourceRecord } from '../state.js';

export const NETWORK_API_VERSIONS = [
  '2025-05-01', '2025-03-01', '2025-01-01', '2024-10-01', '2024-07-01', '2024-05-01', '2024-03-01',
  '2024-01-01', '2023-11-01', '2023-09-01', '2023-06-01', '2023-05-01', '2023-04-01',
] as const;

export const T = {
  vnet: 'Microsoft.Network/virtualNetworks',
  subnet: 'Microsoft.Network/virtualNetworks/subnets',
  nsg: 'Microsoft.Network/networkSecurityGroups',
  rule: 'Microsoft.Network/networkSecurityGroups/securityRules',
  ip: 'Microsoft.Network/publicIPAddresses',
  nic: 'Microsoft.Network/networkInterfaces',
  vm: 'Microsoft.Compute/virtualMachines',
} as const;

/** NIC ip configurations as stored on a NIC record. */
export function ipConfigs(nic: ResourceRecord): Json[] {
  return arr(nic.properties.ipConfigurations);
}

/** Ids of NIC ip configurations whose `pick(ipConfig)` reference equals `id`. */
export function ipConfigsReferencing(core: Core, id: string, pick: (c: Json) => string | undefined): string[] {
  return core.state
    .list({ type: T.nic })
    .flatMap((nic) => ipConfigs(nic).filter((c) => sameId(pick(props(c)), id)).map((c) => String(c.id)));
}

const subnetOf = (c: Json): string | undefined => refId(c.subnet);

/** Shared PUT flow: stores `rec` as Updating, answers 201/200 and provisions after the step. */
export function networkPut(core: Core, ctx: RequestContext, kind: ResourceKind, rec: ResourceRecord, existed: boolean, also: ResourceRecord[] = []): Reply {
  for (const r of [rec, ...also]) {
    r.properties.provisioningState = 'Updating';
    core.state.put(r);
  }
  return startLro(core, ctx, rec, {
    step: 'network.provision',
    status: existed ? 200 : 201,
    body: kind.serialize(rec, ctx),
    work: async () => {
      await core.steps.wait('network.provision', { resourceId: rec.id });
      if (!core.state.isLive(rec)) throw gone(rec.id);
      for (const r of [rec, ...also]) r.properties.provisioningState = 'Succeeded';
    },
    onFailure: () => {
      rec.properties.provisioningState = 'Failed';
    },
  });
}

/** Shared DELETE flow: 202 with both polling headers; the record goes after the step. */
export function networkDelete(core: Core, ctx: RequestContext, rec: ResourceRecord): Reply {
  rec.properties.provisioningState = 'Deleting';
  return startLro(core, ctx, rec, {
    step: 'network.delete',
    status: 202,
    location: true,
    work: async () => {
      await core.steps.wait('network.delete', { resourceId: rec.id });
      if (core.state.isLive(rec)) core.state.remove(rec.id);
    },
    onFailure: () => {
      rec.properties.provisioningState = 'Failed';
    },
  });
}

function inUseSubnetError(subnet: string, users: string[]): ArmError {
  return armErrors.badRequest(
    'InUseSubnetCannotBeDeleted',
    `Subnet ${subnet} is in use by ${users.join(', ')} and cannot be deleted. ` +
      'In order to delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.',
  );
}

/** Validates a subnet body and returns its stored properties. */
function subnetProperties(core: Core, p: Json, by: string): Json {
  const addressPrefix = str(p.addressPrefix) ?? str((p.addressPrefixes as unknown[] | undefined)?.[0]);
  if (!addressPrefix || !/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(addressPrefix)) {
    throw armErrors.invalidParameter(`Subnet ${by} must have a valid addressPrefix.`, 'addressPrefix');
  }
  const out: Json = { addressPrefix, privateEndpointNetworkPolicies: 'Disabled', privateLinkServiceNetworkPolicies: 'Enabled' };
  const nsg = refId(p.networkSecurityGroup);
  if (nsg) {
    if (!core.state.get(nsg)) throw armErrors.invalidReference(nsg, by);
    out.networkSecurityGroup = { id: core.state.get(nsg)?.id };
  }
  return out;
}

function subnetJson(core: Core, rec: ResourceRecord): Json {
  const json = childJson(rec);
  const users = ipConfigsReferencing(core, rec.id, subnetOf);
  if (users.length) (json.properties as Json).ipConfigurations = users.map((id) => ({ id }));
  return json;
}

export function networkKinds(core: Core): ResourceKind[] {
  const vnet: ResourceKind = {
    type: T.vnet,
    operationGroup: 'virtualNetworks',
    apiVersions: NETWORK_API_VERSIONS,
    tracked: true,
    purgeOrder: 60,
    serialize: (rec) => {
      const json = trackedJson(rec);
      (json.properties as Json).subnets = core.state.children(rec.id, T.subnet).map((s) => subnetJson(core, s));
      return json;
    },
    put: (ctx, ref) => {
      core.state.requireGroup(ref.resourceGroup, true);
      const location = requireLocation(ctx.body);
      const p = props(ctx.body);
      const prefixes = obj(p.addressSpace).addressPrefixes;
      if (!Array.isArray(prefixes) || prefixes.length === 0 || !prefixes.every((x) => typeof x === 'string')) {
        throw armErrors.invalidParameter('The virtual network must have at least one address prefix in addressSpace.', 'addressSpace');
      }
      const existing = core.state.get(ref.id);
      const wanted = arr(p.subnets);
      const wantedNames = new Set(wanted.map((s) => String(s.name ?? '').toLowerCase()));
      if (existing) {
        for (const old of core.state.children(existing.id, T.subnet)) {
          if (wantedNames.has(old.name.toLowerCase())) continue;
          const users = ipConfigsReferencing(core, old.id, subnetOf);
          if (users.length) throw inUseSubnetError(old.name, users);
        }
      }
      const subnets = wanted.map((s) => {
        const name = str(s.name);
        if (!name) throw armErrors.invalidParameter('Every subnet must have a name.', 'subnets');
        const sref = childRef(core, ref, T.subnet, name);
        return newRecord(sref, {
          location,
          tags: {},
          tracked: false,
          internal: undefined,
          properties: subnetProperties(core, props(s), sref.id),
        });
      });
      if (existing) {
        for (const old of core.state.children(existing.id, T.subnet)) {
          if (!wantedNames.has(old.name.toLowerCase())) core.state.remove(old.id);
        }
      }
      const rec = newRecord(ref, {
        location,
        tags: tagsOf(ctx.body),
        tracked: true,
        internal: undefined,
        properties: { addressSpace: { addressPrefixes: prefixes }, enableDdosProtection: false, resourceGuid: existing?.properties.resourceGuid ?? randomUUID() },
      });
      if (existing) rec.createdAt = existing.createdAt;
      return networkPut(core, ctx, vnet, rec, Boolean(existing), subnets);
    },
    delete: (ctx, rec) => {
      for (const s of core.state.children(rec.id, T.subnet)) {
        const users = ipConfigsReferencing(core, s.id, subnetOf);
        if (users.length) throw inUseSubnetError(s.name, users);
      }
      return networkDelete(core, ctx, rec);
    },
  };

  const subnet: ResourceKind = {
    type: T.subnet,
    operationGroup: 'subnets',
    apiVersions: NETWORK_API_VERSIONS,
    tracked: false,
    purgeOrder: 61,
    serialize: (rec) => subnetJson(core, rec),
    notFound: (ref) => armErrors.notFound(ref.id),
    put: (ctx, ref) => {
      core.state.requireGroup(ref.resourceGroup, true);
      const parent = core.state.get(ref.parentId);
      if (!parent) throw armErrors.parentNotFound(ref.type, ref.parentId ?? '');
      const existing = core.state.get(ref.id);
      const rec = newRecord(ref, {
        location: parent.location,
        tags: {},
        tracked: false,
        internal: undefined,
        properties: subnetProperties(core, props(ctx.body), ref.id),
      });
      return networkPut(core, ctx, subnet, rec, Boolean(existing));
    },
    delete: (ctx, rec) => {
      const users = ipConfigsReferencing(core, rec.id, subnetOf);
      if (users.length) throw inUseSubnetError(rec.name, users);
      return networkDelete(core, ctx, rec);
    },
  };

  const nsg: ResourceKind = {
    type: T.nsg,
    operationGroup: 'networkSecurityGroups',
    apiVersions: NETWORK_API_VERSIONS,
    tracked: true,
    purgeOrder: 60,
    serialize: (rec) => {
      const json = trackedJson(rec);
      const p = json.properties as Json;
      p.securityRules = core.state.children(rec.id, T.rule).map(childJson);
      p.defaultSecurityRules = defaultRules(rec.id);
      const nics = core.state.list({ type: T.nic }).filter((n) => sameId(refId(n.properties.networkSecurityGroup), rec.id));
      if (nics.length) p.networkInterfaces = nics.map((n) => ({ id: n.id }));
      const subnets = core.state.list({ type: T.subnet }).filter((s) => sameId(refId(s.properties.networkSecurityGroup), rec.id));
      if (subnets.length) p.subnets = subnets.map((s) => ({ id: s.id }));
      return json;
    },
    put: (ctx, ref) => {
      core.state.requireGroup(ref.resourceGroup, true);
      const location = requireLocation(ctx.body);
      const existing = core.state.get(ref.id);
      const rules = arr(props(ctx.body).securityRules).map((r) => {
        const name = str(r.name);
        if (!name) throw armErrors.invalidParameter('Every security rule must have a name.', 'securityRules');
        const rref = childRef(core, ref, T.rule, name);
        return newRecord(rref, { location, tags: {}, tracked: false, internal: undefined, properties: ruleProperties(props(r), rref.id) });
      });
      checkPriorities(rules.map((r) => r.properties));
      if (existing) for (const old of core.state.children(existing.id, T.rule)) core.state.remove(old.id);
      const rec = newRecord(ref, {
        location,
        tags: tagsOf(ctx.body),
        tracked: true,
        internal: undefined,
        properties: { resourceGuid: existing?.properties.resourceGuid ?? randomUUID() },
      });
      return networkPut(core, ctx, nsg, rec, Boolean(existing), rules);
    },
    delete: (ctx, rec) => {
      const users = [
        ...core.state.list({ type: T.nic }).filter((n) => sameId(refId(n.properties.networkSecurityGroup), rec.id)),
        ...core.state.list({ type: T.subnet }).filter((s) => sameId(refId(s.properties.networkSecurityGroup), rec.id)),
      ].map((r) => r.id);
      if (users.length) {
        throw armErrors.badRequest(
          'InUseNetworkSecurityGroupCannotBeDeleted',
          `Network security group ${rec.id} cannot be deleted because it is in use by the following resources: ${users.join(', ')}. ` +
            'In order to delete the Network security group, remove the association with the resource(s). To learn how to do this, see aka.ms/deletensg.',
        );
      }
      return networkDelete(core, ctx, rec);
    },
  };

  const rule: ResourceKind = {
    type: T.rule,
    operationGroup: 'securityRules',
    apiVersions: NETWORK_API_VERSIONS,
    tracked: false,
    purgeOrder: 61,
    serialize: childJson,
    notFound: (ref) => armErrors.notFound(ref.id),
    put: (ctx, ref) => {
      core.state.requireGroup(ref.resourceGroup, true);
      const parent = core.state.get(ref.parentId);
      if (!parent) throw armErrors.parentNotFound(ref.type, ref.parentId ?? '');
      const existing = core.state.get(ref.id);
      const properties = ruleProperties(props(ctx.body), ref.id);
      checkPriorities([...core.state.children(parent.id, T.rule).filter((r) => r !== existing).map((r) => r.properties), properties]);
      const rec = newRecord(ref, { location: parent.location, tags: {}, tracked: false, internal: undefined, properties });
      return networkPut(core, ctx, rule, rec, Boolean(existing));
    },
    delete: (ctx, rec) => networkDelete(core, ctx, rec),
  };

  return [vnet, subnet, nsg, rule];
}

/** Reference to the nested resource `name` of `type` under `parent`. */
export function childRef(core: Core, parent: ResourceRef, type: string, name: string): ResourceRef {
  return {
    id: core.state.resourceId(parent.resourceGroup, type, [...parent.names, name]),
    type,
    names: [...parent.names, name],
    name,
    resourceGroup: parent.resourceGroup,
    parentId: parent.id,
  };
}

const PROTOCOLS = ['Tcp', 'Udp', 'Icmp', 'Esp', 'Ah', '*'];

function ruleProperties(p: Json, id: string): Json {
  const bad = (field: string, why: string): never => {
    throw armErrors.badRequest('SecurityRuleParameterContainsUnsupportedValue', `Security rule ${id} has invalid ${field}: ${why}.`);
  };
  const priority = num(p.priority);
  if (priority === undefined || !Number.isInteger(priority) || priority < 100 || priority > 4096) {
    throw armErrors.badRequest('SecurityRuleInvalidPriority', `Security rule ${id} has invalid Priority. Value provided: ${String(p.priority)}. Allowed range 100-4096.`);
  }
  const protocol = PROTOCOLS.find((x) => x.toLowerCase() === String(p.protocol ?? '').toLowerCase()) ?? bad('protocol', String(p.protocol));
  const access = ['Allow', 'Deny'].find((x) => x.toLowerCase() === String(p.access ?? '').toLowerCase()) ?? bad('access', String(p.access));
  const direction =
    ['Inbound', 'Outbound'].find((x) => x.toLowerCase() === String(p.direction ?? '').toLowerCase()) ?? bad('direction', String(p.direction));
  const pick = (single: string, plural: string): Json => {
    const one = str(p[single]);
    const many = Array.isArray(p[plural]) ? (p[plural] as unknown[]).map(String) : [];
    if (!one && many.length === 0) bad(single, 'missing');
    return one ? { [single]: one, [plural]: [] } : { [plural]: many };
  };
  return {
    protocol,
    access,
    direction,
    priority,
    ...pick('sourceAddressPrefix', 'sourceAddressPrefixes'),
    ...pick('sourcePortRange', 'sourcePortRanges'),
    ...pick('destinationAddressPrefix', 'destinationAddressPrefixes'),
    ...pick('destinationPortRange', 'destinationPortRanges'),
    ...(str(p.description) ? { description: p.description } : {}),
  };
}

function checkPriorities(rules: Json[]): void {
  const seen = new Set<string>();
  for (const r of rules) {
    const key = `${String(r.direction)}/${String(r.priority)}`;
    if (seen.has(key)) {
      throw armErrors.badRequest('SecurityRuleConflict', `Security rules have the same Priority ${String(r.priority)} and Direction ${String(r.direction)}.`);
    }
    seen.add(key);
  }
}

function defaultRules(nsgId: string): Json[] {
  const rule = (name: string, direction: string, priority: number, access: string, src: string, dst: string): Json => ({
    id: `${nsgId}/defaultSecurityRules/${name}`,
    name,
    type: 'Microsoft.Network/networkSecurityGroups/defaultSecurityRules',
    properties: {
      protocol: '*', sourcePortRange: '*', destinationPortRange: '*', sourceAddressPrefix: src,
      destinationAddressPrefix: dst, access, priority, direction, provisioningState: 'Succeeded',
    },
  });
  return [
    rule('AllowVnetInBound', 'Inbound', 65000, 'Allow', 'VirtualNetwork', 'VirtualNetwork'),
    rule('AllowAzureLoadBalancerInBound', 'Inbound', 65001, 'Allow', 'AzureLoadBalancer', '*'),
    rule('DenyAllInBound', 'Inbound', 65500, 'Deny', '*', '*'),
    rule('AllowVnetOutBound', 'Outbound', 65000, 'Allow', 'VirtualNetwork', 'VirtualNetwork'),
    rule('AllowInternetOutBound', 'Outbound', 65001, 'Allow', '*', 'Internet'),
    rule('DenyAllOutBound', 'Outbound', 65500, 'Deny', '*', '*'),
  ];
}
