/**
 * What a provider module implements for each resource type, the context handlers receive, and
 * small helpers they share (ARM JSON shapes, body validation, starting an LRO).
 */
import type { LoopbackAddresses } from '../common/machines.js';
import type { TrackedMachines } from './backend.js';
import { ArmError, armErrors } from './errors.js';
import type { ArmStep, Reply, Steps } from './hooks.js';
import type { Operations } from './lro.js';
import type { ArmState, ResourceRecord } from './state.js';

export interface VmSize {
  cpus: number;
  memoryMiB: number;
}

/** Everything a provider needs from the fake. */
export interface Core {
  state: ArmState;
  ops: Operations;
  steps: Steps;
  machines: TrackedMachines;
  addresses: LoopbackAddresses;
  vmSizes: Record<string, VmSize>;
  /** Marketplace images (`publisher:offer:sku`) VMs may use; any when unset. */
  knownImages?: string[];
  kind(type: string): ResourceKind | undefined;
}

export interface RequestContext {
  method: string;
  path: string;
  query: URLSearchParams;
  apiVersion: string;
  /** Parsed JSON body; `{}` when there is none. */
  body: Record<string, unknown>;
}

export interface ResourceRef {
  id: string;
  /** Canonical full type (`Microsoft.Compute/galleries/images`). */
  type: string;
  /** Names along the path, outermost first. */
  names: string[];
  name: string;
  resourceGroup: string;
  /** Id of the parent resource for nested types. */
  parentId?: string;
}

export type Handler = (ctx: RequestContext, ref: ResourceRef) => Reply | Promise<Reply>;
export type RecordHandler = (ctx: RequestContext, rec: ResourceRecord) => Reply | Promise<Reply>;

export interface ResourceKind {
  type: string;
  /** SDK operation group, used to name request operations (`virtualMachines.deallocate`). */
  operationGroup: string;
  apiVersions: readonly string[];
  tracked: boolean;
  /** When a resource group is deleted, lower orders are purged first. */
  purgeOrder: number;
  put?: Handler;
  /** Called for an existing record; a DELETE of an absent resource answers 204 without it. */
  delete?: RecordHandler;
  /** Keyed `POST deallocate`, `GET instanceView`: sub-paths of an existing resource. */
  actions?: Record<string, RecordHandler>;
  serialize(rec: ResourceRecord, ctx?: RequestContext): Record<string, unknown>;
  /** Backend side of deleting the resource with its group (no dependency checks). */
  purge?(rec: ResourceRecord): Promise<void>;
  /** The error for a GET of an absent resource (default ResourceNotFound). */
  notFound?(ref: ResourceRef): ArmError;
}

export const namespaceOf = (type: string): string => type.split('/')[0] as string;

export function trackedJson(rec: ResourceRecord): Record<string, unknown> {
  const json: Record<string, unknown> = {
    id: rec.id,
    name: rec.name,
    type: rec.type,
    location: rec.location,
    tags: { ...rec.tags },
  };
  if (rec.sku) json.sku = { ...rec.sku };
  if (rec.managedBy) json.managedBy = rec.managedBy;
  json.properties = structuredClone(rec.properties);
  return json;
}

export function childJson(rec: ResourceRecord): Record<string, unknown> {
  return { id: rec.id, name: rec.name, type: rec.type, properties: structuredClone(rec.properties) };
}

// ---- body access -------------------------------------------------------------------------------

export type Json = Record<string, unknown>;

export function obj(value: unknown): Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : {};
}

export function arr(value: unknown): Json[] {
  return Array.isArray(value) ? value.map(obj) : [];
}

export function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

export function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** `properties` of a request body. */
export function props(body: Json): Json {
  return obj(body.properties);
}

export function requireLocation(body: Json): string {
  const location = str(body.location);
  if (!location) throw new ArmError(400, 'LocationRequired', 'The location property is required for this definition.');
  return location.toLowerCase().replace(/\s+/g, '');
}

export function tagsOf(body: Json): Record<string, string> {
  const tags = obj(body.tags);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(tags)) {
    if (typeof v !== 'string') throw armErrors.invalidParameter(`The value of tag '${k}' must be a string.`, 'tags');
    out[k] = v;
  }
  return out;
}

/** `{ id }` sub-resource reference, or undefined. */
export function refId(value: unknown): string | undefined {
  return str(obj(value).id);
}

export const sameId = (a: string | undefined, b: string | undefined): boolean =>
  a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();

// ---- LRO replies -------------------------------------------------------------------------------

export interface LroReply {
  step: ArmStep;
  /** 201/200 for PUTs, 202 for DELETEs and actions. */
  status: number;
  body?: unknown;
  /** Which polling headers the initial response carries. */
  asyncOperation?: boolean;
  location?: boolean;
  work: () => Promise<unknown>;
  onFailure?: (err: ArmError) => void;
}

/** Starts an operation on `rec`/`ref` and builds the initial response with its polling headers. */
export function startLro(core: Core, ctx: RequestContext, target: { id: string; type: string; location: string }, r: LroReply): Reply {
  const op = core.ops.run(
    {
      step: r.step,
      resourceId: target.id,
      namespace: namespaceOf(target.type),
      location: target.location,
      apiVersion: ctx.apiVersion,
    },
    r.work,
    r.onFailure,
  );
  const reply: Reply = {
    status: r.status,
    headers: core.ops.headers(op, { asyncOperation: r.asyncOperation ?? true, location: r.location ?? false }),
  };
  if (r.body !== undefined) reply.body = r.body;
  return reply;
}

/** Wraps a backend failure as the ARM error an operation reports. */
export function backendError(err: unknown): ArmError {
  if (err instanceof ArmError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ArmError(500, 'InternalExecutionError', `An internal execution error occurred: ${message}`);
}

/** Thrown inside LRO work when the resource vanished meanwhile (deleted with its group...). */
export function gone(id: string): ArmError {
  return new ArmError(409, 'Canceled', `Operation on ${id} was canceled because the resource was deleted.`);
}

export function newRecord<I>(
  ref: ResourceRef,
  fields: Omit<ResourceRecord<I>, 'id' | 'name' | 'type' | 'resourceGroup' | 'createdAt'>,
): ResourceRecord<I> {
  return {
    id: ref.id,
    name: ref.name,
    type: ref.type,
    resourceGroup: ref.resourceGroup,
    createdAt: new Date().toISOString(),
    ...fields,
  };
}
