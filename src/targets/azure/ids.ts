/**
 * ARM resource ids and the ledger kinds of the Azure driver: building ids from names, reading names
 * back out of ids (so a ledger entry alone is enough to delete), and deterministic GUID names for
 * role assignments (a retried publish makes the same assignment, not a second one).
 */
import { createHash } from 'node:crypto';

/** Ledger kinds, as the plan's steps list them. */
export const KIND = {
  group: 'resource-group',
  vnet: 'virtual-network',
  nsg: 'network-security-group',
  publicIp: 'public-ip',
  nic: 'network-interface',
  vm: 'virtual-machine',
  disk: 'disk',
  image: 'image',
  galleryVersion: 'gallery-image-version',
  roleAssignment: 'role-assignment',
} as const;
export type AzureKind = (typeof KIND)[keyof typeof KIND];

/** Short names some callers use for the same kinds. */
const ALIASES: Record<string, AzureKind> = {
  rg: KIND.group,
  vm: KIND.vm,
  nic: KIND.nic,
  nsg: KIND.nsg,
  vnet: KIND.vnet,
  'public-ip-address': KIND.publicIp,
  'managed-image': KIND.image,
};

export function normalKind(kind: string): AzureKind | undefined {
  const known = Object.values(KIND) as string[];
  return known.includes(kind) ? (kind as AzureKind) : ALIASES[kind];
}

/** ARM resource type per kind (a resource group has none). */
export const ARM_TYPE: Record<Exclude<AzureKind, 'resource-group' | 'role-assignment'>, string> = {
  'virtual-network': 'Microsoft.Network/virtualNetworks',
  'network-security-group': 'Microsoft.Network/networkSecurityGroups',
  'public-ip': 'Microsoft.Network/publicIPAddresses',
  'network-interface': 'Microsoft.Network/networkInterfaces',
  'virtual-machine': 'Microsoft.Compute/virtualMachines',
  disk: 'Microsoft.Compute/disks',
  image: 'Microsoft.Compute/images',
  'gallery-image-version': 'Microsoft.Compute/galleries/images/versions',
};

export function groupId(subscription: string, group: string): string {
  return `/subscriptions/${subscription}/resourceGroups/${group}`;
}

/** Id of a resource of `type` (`Microsoft.X/a/b` with one name per type segment). */
export function resourceId(subscription: string, group: string, type: string, names: string[]): string {
  const [ns, ...types] = type.split('/');
  const path = types.map((t, i) => `${t}/${names[i] ?? ''}`).join('/');
  return `${groupId(subscription, group)}/providers/${ns}/${path}`;
}

export interface ParsedId {
  subscription: string;
  group?: string;
  /** Names after the provider namespace's types, in order (gallery, image, version...). */
  names: string[];
}

/** Reads subscription, resource group and names out of an ARM id; undefined when it is not one. */
export function parseId(id: string): ParsedId | undefined {
  const m = /^\/subscriptions\/([^/]+)(?:\/resourceGroups\/([^/]+))?(?:\/providers\/[^/]+\/(.+))?$/i.exec(id);
  if (!m?.[1]) return undefined;
  const rest = (m[3] ?? '').split('/').filter(Boolean);
  // a nested provider (role assignments on a scope) is not part of the names
  const nested = rest.findIndex((s) => s.toLowerCase() === 'providers');
  const own = nested >= 0 ? rest.slice(0, nested) : rest;
  return { subscription: m[1], ...(m[2] ? { group: m[2] } : {}), names: own.filter((_, i) => i % 2 === 1) };
}

/** The built-in Reader role, the same id in every subscription. */
export const READER_ROLE = 'acdd72a7-3385-48ef-bd42-f606fba81ae7';

export function roleDefinitionId(subscription: string, role = READER_ROLE): string {
  return `/subscriptions/${subscription}/providers/Microsoft.Authorization/roleDefinitions/${role}`;
}

/** A GUID derived from its inputs (role assignment names must be GUIDs). */
export function stableGuid(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\n').toLowerCase()).digest('hex');
  const variant = ((parseInt(h[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function roleAssignmentId(scope: string, name: string): string {
  return `${scope}/providers/Microsoft.Authorization/roleAssignments/${name}`;
}

/** Azure region names compare without case and spaces ("West Europe" = "westeurope"). */
export function sameRegion(a: string, b: string): boolean {
  return a.toLowerCase().replace(/\s+/g, '') === b.toLowerCase().replace(/\s+/g, '');
}
