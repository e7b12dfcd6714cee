/**
 * instances: stop (STOPPING until MachineBackend.stopMachine resolves, then TERMINATED and the
 * ephemeral natIP released), start (STAGING -> RUNNING with a new natIP), setMetadata (with
 * fingerprint check), getSerialPortOutput (MachineBackend.consoleOutput) and getGuestAttributes
 * (`hostkeys/` from the console's SSH HOST KEY block, from state.setGuestAttribute, or synthetic).
 */
import type { Handler } from '../core.js';
import { param } from '../core.js';
import { invalidField, notFound, notReady } from '../errors.js';
import { checkFingerprint, checkMetadataItems, fingerprint } from '../fields.js';
import { renderOperation } from '../operations.js';
import type { InstanceRecord } from '../state.js';
import { metadataFlag } from './instance-spec.js';
import { INSTANCE_TERMINATED, boot, requireInstance, serialized } from './instances.js';

const lookup = (state: Parameters<Handler>[0]['state'], call: Parameters<Handler>[1]) =>
  requireInstance(state, param(call, 'project'), param(call, 'zone'), param(call, 'instance'));

const opSpec = (state: Parameters<Handler>[0]['state'], i: InstanceRecord, operationType: string) => ({
  project: i.project,
  zone: i.zone,
  operationType,
  targetLink: state.instanceLink(i),
  targetId: i.id,
});

export const stopInstance: Handler = (core, call) => {
  const { state, operations, machines } = core;
  const instance = lookup(state, call);
  const op = operations.start(opSpec(state, instance, 'stop'), call, {
    run: () =>
      serialized(instance, async () => {
        if (instance.status === 'TERMINATED') return;
        instance.status = 'STOPPING';
        await machines.stopMachine(instance.backendId);
        await operations.after(INSTANCE_TERMINATED);
        instance.status = 'TERMINATED';
        instance.lastStopTimestamp = state.now();
        for (const nic of instance.networkInterfaces) for (const ac of nic.accessConfigs) ac.natIP = '';
        instance.natIP = undefined;
      }),
  });
  return renderOperation(op);
};

export const startInstance: Handler = (core, call) => {
  const { state, operations } = core;
  const instance = lookup(state, call);
  const op = operations.start(opSpec(state, instance, 'start'), call, {
    run: () =>
      serialized(instance, async () => {
        if (instance.status === 'RUNNING') return;
        await boot(core, instance);
      }),
  });
  return renderOperation(op);
};

export const setInstanceMetadata: Handler = (core, call) => {
  const { state, operations } = core;
  const instance = lookup(state, call);
  checkFingerprint(call.body.fingerprint, fingerprint(instance.metadata), 'Metadata');
  const items = checkMetadataItems('metadata.items', call.body.items);
  const op = operations.start(opSpec(state, instance, 'setMetadata'), call, {
    run: async () => void (instance.metadata = items),
  });
  return renderOperation(op);
};

export const getSerialPortOutput: Handler = async ({ state, machines }, call) => {
  const instance = lookup(state, call);
  const port = Number(call.query.get('port') ?? '1');
  if (!Number.isInteger(port) || port < 1 || port > 4) throw invalidField('port', String(port), 'Must be between 1 and 4.');
  if (instance.status === 'PROVISIONING') throw notReady(`projects/${instance.project}/zones/${instance.zone}/instances/${instance.name}`);
  const all = port === 1 ? Buffer.from(await machines.consoleOutput(instance.backendId)) : Buffer.alloc(0);
  const startRaw = Number(call.query.get('start') ?? '0');
  const start = Number.isInteger(startRaw) && startRaw >= 0 ? Math.min(startRaw, all.length) : 0;
  return {
    kind: 'compute#serialPortOutput',
    contents: all.subarray(start).toString('utf8'),
    start: String(start),
    next: String(all.length),
    selfLink: `${state.instanceLink(instance)}/serialPort`,
  };
};

/** Host keys printed on the console between cloud-init's / the guest agent's markers. */
function hostKeysFromConsole(console: string): Map<string, string> {
  const keys = new Map<string, string>();
  const block = /-----BEGIN SSH HOST KEY KEYS-----([\s\S]*?)-----END SSH HOST KEY KEYS-----/.exec(console);
  for (const line of block?.[1]?.split('\n') ?? []) {
    const m = /^\s*(\S+)\s+(AAAA\S+)/.exec(line);
    if (m?.[1] && m[2]) keys.set(`hostkeys/${m[1]}`, m[2]);
  }
  return keys;
}

export const getGuestAttributes: Handler = async ({ state, machines }, call) => {
  const instance = lookup(state, call);
  const queryPath = call.query.get('queryPath');
  const variableKey = call.query.get('variableKey');
  const attributes = new Map<string, string>();
  if (metadataFlag(instance.metadata, 'enable-guest-attributes') && instance.status === 'RUNNING') {
    for (const [k, v] of hostKeysFromConsole(await machines.consoleOutput(instance.backendId))) attributes.set(k, v);
    for (const [k, v] of instance.guestAttributes) attributes.set(k, v);
  }
  const base = `${state.instanceLink(instance)}/guestAttributes/`;
  const missing = (path: string) =>
    notFound(`projects/${instance.project}/zones/${instance.zone}/instances/${instance.name}/guestAttributes/${path}`);
  if (variableKey) {
    const value = attributes.get(variableKey);
    if (value === undefined) throw missing(variableKey);
    return { kind: 'compute#guestAttributes', variableKey, variableValue: value, selfLink: base + variableKey };
  }
  const prefix = queryPath ?? '';
  const items = [...attributes]
    .filter(([k]) => (prefix.endsWith('/') || prefix === '' ? k.startsWith(prefix) : k === prefix))
    .map(([k, value]) => {
      const [namespace = '', key = ''] = k.split('/');
      return { namespace, key, value };
    });
  if (items.length === 0) throw missing(prefix);
  return { kind: 'compute#guestAttributes', queryPath: prefix, queryValue: { items }, selfLink: base + prefix };
};
