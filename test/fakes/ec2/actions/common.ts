/** What every action handler gets, and helpers shared by them (tags, ClientToken, rendering). */
import { Ec2Error } from '../errors.js';
import type { ImageMapping, InstanceStateName, RegionState, ResourceType, Tags } from '../model.js';
import { INSTANCE_STATE_CODES } from '../model.js';
import type { Params } from '../query.js';
import type { Ec2State } from '../state.js';
import type { XmlObject, XmlValue } from '../xml.js';

export interface ActionContext {
  state: Ec2State;
  region: RegionState;
  params: Params;
  requestId: string;
}

export type ActionHandler = (ctx: ActionContext) => XmlObject | Promise<XmlObject>;

export const MAX_TAGS = 50;

export function validateTag(key: string, value: string): void {
  if (key.length === 0 || key.length > 128) {
    throw new Ec2Error('InvalidParameterValue', `Tag key '${key}' must be between 1 and 128 characters`);
  }
  if (key.toLowerCase().startsWith('aws:')) {
    throw new Ec2Error('InvalidParameterValue', `Tag keys starting with 'aws:' are reserved for internal use`);
  }
  if (value.length > 256) {
    throw new Ec2Error('InvalidParameterValue', `Tag value for key '${key}' must be at most 256 characters`);
  }
}

export function applyTags(target: Tags, tags: Tags): void {
  for (const [key, value] of tags) {
    validateTag(key, value);
    target.set(key, value);
  }
  if (target.size > MAX_TAGS) {
    throw new Ec2Error('TagLimitExceeded', `The maximum number of tags per resource is ${MAX_TAGS}`);
  }
}

/** `TagSpecification.N.ResourceType` + `.Tag.M.{Key,Value}`, checked against the action's types. */
export function tagSpecifications(params: Params, allowed: ResourceType[]): Map<ResourceType, Tags> {
  const out = new Map<ResourceType, Tags>();
  for (const spec of params.structs('TagSpecification')) {
    const type = spec.required('ResourceType') as ResourceType;
    if (!allowed.includes(type)) {
      throw new Ec2Error('InvalidParameterValue', `'${type}' is not a valid taggable resource type for this operation.`);
    }
    const tags = out.get(type) ?? new Map<string, string>();
    for (const tag of spec.structs('Tag')) {
      const key = tag.str('Key') ?? '';
      const value = tag.str('Value') ?? '';
      validateTag(key, value);
      tags.set(key, value);
    }
    if (tags.size > MAX_TAGS) {
      throw new Ec2Error('TagLimitExceeded', `The maximum number of tags per resource is ${MAX_TAGS}`);
    }
    out.set(type, tags);
  }
  return out;
}

export function copyTags(tags: Tags | undefined): Tags {
  return new Map(tags ?? []);
}

export function tagSetXml(tags: Tags): XmlValue[] | undefined {
  if (tags.size === 0) return undefined;
  return [...tags].map(([key, value]) => ({ key, value }));
}

export function instanceStateXml(name: InstanceStateName): XmlObject {
  return { code: INSTANCE_STATE_CODES[name], name };
}

export function imageMappingXml(m: ImageMapping): XmlObject {
  return {
    deviceName: m.deviceName,
    ebs: {
      snapshotId: m.snapshotId,
      volumeSize: m.volumeSize,
      deleteOnTermination: m.deleteOnTermination,
      volumeType: m.volumeType,
      iops: m.iops,
      throughput: m.throughput,
      encrypted: m.encrypted,
      kmsKeyId: m.kmsKeyId,
    },
  };
}

/**
 * ClientToken idempotency: the same token with the same parameters answers with the earlier
 * result's id; with other parameters it is IdempotentParameterMismatch.
 */
export function priorResult(ctx: ActionContext, action: string, token: string | undefined): string | undefined {
  if (!token) return undefined;
  const prior = ctx.region.clientTokens.get(token);
  if (!prior) return undefined;
  if (prior.action !== action || prior.fingerprint !== ctx.params.fingerprint()) {
    throw new Ec2Error(
      'IdempotentParameterMismatch',
      `Client token '${token}' was already used with different request parameters`,
    );
  }
  return prior.resultId;
}

export function rememberResult(ctx: ActionContext, action: string, token: string | undefined, resultId: string): void {
  if (token) ctx.region.clientTokens.set(token, { action, resultId, fingerprint: ctx.params.fingerprint() });
}

export function defaultKmsKey(ctx: ActionContext): string {
  return `arn:aws:kms:${ctx.region.name}:${ctx.state.accountId}:key/00000000-0000-4000-8000-00000000ebs0`;
}
