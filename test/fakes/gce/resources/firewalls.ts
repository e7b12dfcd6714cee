/**
 * firewalls: insert, get, list, delete. A rule exists once its insert operation is DONE (after the
 * `firewall.applied` delay) and is gone once its delete operation is DONE. Rules are recorded, not
 * enforced (the machines' SSH ports are reachable on loopback either way).
 */
import type { Handler } from '../core.js';
import { param } from '../core.js';
import { alreadyExists, invalidField, notFound } from '../errors.js';
import { checkTags } from '../fields.js';
import { checkName, globalPath, globalRef, link } from '../links.js';
import { listPage } from '../list.js';
import { renderOperation } from '../operations.js';
import type { FirewallRecord, GceState } from '../state.js';

export const FIREWALL_APPLIED = 'firewall.applied';
export const FIREWALL_DELETED = 'firewall.deleted';

const PROTOCOLS = ['tcp', 'udp', 'icmp', 'esp', 'ah', 'sctp', 'ipip', 'all'];
const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;

function checkRanges(field: string, value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalidField(field, value, 'Must be a list.');
  return value.map((r: unknown, i) => {
    const m = typeof r === 'string' ? CIDR.exec(r) : null;
    const ok = m && m.slice(1, 5).every((o) => Number(o) <= 255) && (m[5] === undefined || Number(m[5]) <= 32);
    if (!ok) throw invalidField(`${field}[${i}]`, r, 'Must be a valid IPv4 CIDR address range.');
    return r as string;
  });
}

function checkRules(field: string, value: unknown): { IPProtocol: string; ports?: string[] }[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalidField(field, value, 'Must be a list.');
  return value.map((raw: unknown, i) => {
    const rule = (raw ?? {}) as { IPProtocol?: unknown; ports?: unknown };
    const proto = rule.IPProtocol;
    if (typeof proto !== 'string' || !(PROTOCOLS.includes(proto) || /^\d{1,3}$/.test(proto))) {
      throw invalidField(`${field}[${i}].IPProtocol`, proto, 'Must be a protocol name or number.');
    }
    if (rule.ports === undefined) return { IPProtocol: proto };
    if (!['tcp', 'udp', 'sctp', 'all'].includes(proto)) {
      throw invalidField(`${field}[${i}].ports`, rule.ports, 'Ports can only be given for tcp, udp and sctp.');
    }
    if (!Array.isArray(rule.ports)) throw invalidField(`${field}[${i}].ports`, rule.ports, 'Must be a list.');
    const ports = rule.ports.map((p: unknown, j) => {
      const m = typeof p === 'string' ? /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(p) : null;
      if (!m || Number(m[1]) > 65535 || (m[2] !== undefined && (Number(m[2]) > 65535 || Number(m[2]) < Number(m[1])))) {
        throw invalidField(`${field}[${i}].ports[${j}]`, p, 'Must be a port or a port range.');
      }
      return p as string;
    });
    return { IPProtocol: proto, ports };
  });
}

export function renderFirewall(state: GceState, f: FirewallRecord): Record<string, unknown> {
  return {
    kind: 'compute#firewall',
    id: f.id,
    creationTimestamp: f.creationTimestamp,
    name: f.name,
    ...(f.description ? { description: f.description } : {}),
    network: link(f.network),
    priority: f.priority,
    ...(f.sourceRanges.length > 0 ? { sourceRanges: f.sourceRanges } : {}),
    ...(f.destinationRanges.length > 0 ? { destinationRanges: f.destinationRanges } : {}),
    ...(f.sourceTags.length > 0 ? { sourceTags: f.sourceTags } : {}),
    ...(f.targetTags.length > 0 ? { targetTags: f.targetTags } : {}),
    ...(f.allowed.length > 0 ? { allowed: f.allowed } : {}),
    ...(f.denied.length > 0 ? { denied: f.denied } : {}),
    direction: f.direction,
    logConfig: { enable: false },
    disabled: f.disabled,
    selfLink: state.firewallLink(f),
  };
}

const firewallPath = (project: string, name: string) => globalPath(project, 'firewalls', name);

function requireFirewall(state: GceState, project: string, name: string): FirewallRecord {
  const firewall = state.getFirewall(project, name);
  if (!firewall) throw notFound(firewallPath(project, name));
  return firewall;
}

export const getFirewall: Handler = ({ state }, call) =>
  renderFirewall(state, requireFirewall(state, param(call, 'project'), param(call, 'firewall')));

export const listFirewalls: Handler = ({ state }, call) => {
  const project = param(call, 'project');
  const items = [...state.firewalls.values()].filter((f) => f.project === project).map((f) => renderFirewall(state, f));
  return {
    kind: 'compute#firewallList',
    id: `projects/${project}/global/firewalls`,
    ...listPage(call, items),
    selfLink: link(`projects/${project}/global/firewalls`),
  };
};

export const insertFirewall: Handler = (core, call) => {
  const { state, operations } = core;
  const project = param(call, 'project');
  const body = call.body;
  const name = checkName('resource.name', body.name);
  const pending = [...state.operations.values()].some(
    (o) => o.status !== 'DONE' && o.operationType === 'insert' && o.targetLink === state.firewallLink({ project, name }),
  );
  if (state.getFirewall(project, name) || pending) throw alreadyExists(firewallPath(project, name));
  const network = globalRef('resource.network', body.network ?? 'global/networks/default', 'networks', project);
  const direction = body.direction ?? 'INGRESS';
  if (direction !== 'INGRESS' && direction !== 'EGRESS') throw invalidField('resource.direction', direction, 'Must be INGRESS or EGRESS.');
  const allowed = checkRules('resource.allowed', body.allowed);
  const denied = checkRules('resource.denied', body.denied);
  if ((allowed.length > 0) === (denied.length > 0)) {
    throw invalidField('resource', name, "Exactly one of 'allowed' or 'denied' must be specified.");
  }
  const priority = body.priority === undefined ? 1000 : Number(body.priority);
  if (!Number.isInteger(priority) || priority < 0 || priority > 65535) throw invalidField('resource.priority', body.priority, 'Must be between 0 and 65535.');
  const sourceRanges = checkRanges('resource.sourceRanges', body.sourceRanges);
  const sourceTags = checkTags('resource.sourceTags', body.sourceTags);
  if (direction === 'INGRESS' && sourceRanges.length === 0 && sourceTags.length === 0 && body.sourceServiceAccounts === undefined) {
    sourceRanges.push('0.0.0.0/0');
  }
  const record: FirewallRecord = {
    project,
    name,
    id: state.ids.id(),
    creationTimestamp: state.now(),
    description: typeof body.description === 'string' ? body.description : undefined,
    network: `projects/${network.project}/global/networks/${network.name}`,
    priority,
    direction,
    sourceRanges,
    destinationRanges: checkRanges('resource.destinationRanges', body.destinationRanges),
    sourceTags,
    targetTags: checkTags('resource.targetTags', body.targetTags),
    allowed,
    denied,
    disabled: body.disabled === true,
  };
  const op = operations.start(
    { project, operationType: 'insert', targetLink: state.firewallLink(record), targetId: record.id },
    call,
    {
      run: async () => {
        await operations.after(FIREWALL_APPLIED);
        state.putFirewall(record);
      },
    },
  );
  return renderOperation(op);
};

export const deleteFirewall: Handler = (core, call) => {
  const { state, operations } = core;
  const record = requireFirewall(state, param(call, 'project'), param(call, 'firewall'));
  const op = operations.start(
    { project: record.project, operationType: 'delete', targetLink: state.firewallLink(record), targetId: record.id },
    call,
    {
      run: async () => {
        await operations.after(FIREWALL_DELETED);
        state.dropFirewall(record);
      },
    },
  );
  return renderOperation(op);
};
