/**
 * The HTTPS front door of the ARM fake: parses ARM paths, checks the bearer token's presence and
 * the api-version, runs interceptors and injected faults, dispatches to the resource kinds, and
 * writes ARM JSON (errors as `{"error":{"code","message"}}`). Every request is logged.
 *
 * Paths (matched case-insensitively, as ARM does):
 *   /subscriptions/{s}/resourcegroups[/{rg}]                          resource groups
 *   /subscriptions/{s}[/resourcegroups/{rg}]/resources                 generic resource listing
 *   /subscriptions/{s}/operationresults/{id}                            resource group delete monitor
 *   /subscriptions/{s}/providers/{ns}/locations/{loc}/operations/{id}         Azure-AsyncOperation
 *   /subscriptions/{s}/providers/{ns}/locations/{loc}/operationResults/{id}   Location
 *   /subscriptions/{s}[/resourcegroups/{rg}]/providers/{ns}/{type}      list of a type
 *   .../providers/{ns}/{type}/{name}[/{childType}/{childName}...]       a resource (or list of children)
 *   .../providers/{ns}/{type}/{name}/{action}                          POST action / GET sub-view
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FaultInjector } from '../common/faults.js';
import { readBody } from '../common/http.js';
import { ArmError, armErrors, asArmError } from './errors.js';
import type { Interceptors, Reply } from './hooks.js';
import { namespaceOf, type Core, type RequestContext, type ResourceKind, type ResourceRef } from './kinds.js';
import { RESOURCES_API_VERSIONS, type ResourceGroups } from './providers/resources.js';

export interface RequestLogEntry {
  method: string;
  path: string;
  query: string;
  /** Operation name, as used by interceptors and `FaultOptions.only`. */
  operation: string;
  status: number;
  /** ARM error code of an error answer. */
  code?: string;
  at: number;
}

export interface ServerDeps {
  core: Core;
  groups: ResourceGroups;
  kinds: ResourceKind[];
  interceptors: Interceptors;
  faults: FaultInjector;
  /** Retry-After (seconds) of injected 429s. */
  throttleRetryAfterSeconds: number;
  /** When set, the bearer token must be exactly this. */
  token?: string;
  log: RequestLogEntry[];
}

interface Route {
  operation: string;
  apiVersions: readonly string[];
  resourceId?: string;
  handle(ctx: RequestContext): Reply | Promise<Reply>;
}

export function createHandler(deps: ServerDeps): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const byType = new Map(deps.kinds.map((k) => [k.type.toLowerCase(), k]));
  const versionsOf = (ns: string): string[] => {
    const all = deps.kinds.filter((k) => namespaceOf(k.type).toLowerCase() === ns.toLowerCase()).flatMap((k) => [...k.apiVersions]);
    return [...new Set(ns.toLowerCase() === 'microsoft.resources' ? [...all, ...RESOURCES_API_VERSIONS] : all)];
  };

  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'https://fake.invalid');
    const method = (req.method ?? 'GET').toUpperCase();
    const entry: RequestLogEntry = { method, path: url.pathname, query: url.search, operation: 'unknown', status: 0, at: Date.now() };
    deps.log.push(entry);
    let reply: Reply;
    try {
      const raw = await readBody(req);
      const auth = req.headers.authorization ?? '';
      if (!/^Bearer \S+/.test(auth)) throw armErrors.authenticationFailed("Authentication failed. The 'Authorization' header is missing.");
      if (deps.token !== undefined && auth !== `Bearer ${deps.token}`) {
        throw new ArmError(401, 'InvalidAuthenticationToken', 'The access token is invalid.');
      }
      const route = resolve(deps, byType, versionsOf, method, url.pathname);
      entry.operation = route.operation;
      const apiVersion = checkApiVersion(url.searchParams, route.apiVersions);
      let body: unknown = {};
      if (raw.trim() !== '') {
        try {
          body = JSON.parse(raw);
        } catch {
          throw armErrors.badRequest('InvalidRequestContent', 'The request content was invalid and could not be deserialized.');
        }
      }
      const ctx: RequestContext = {
        method,
        path: url.pathname,
        query: url.searchParams,
        apiVersion,
        body: body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {},
      };
      const intercepted = await deps.interceptors.run({
        name: route.operation,
        method,
        path: url.pathname,
        body: ctx.body,
        ...(route.resourceId ? { resourceId: route.resourceId } : {}),
      });
      const fault = intercepted ? undefined : deps.faults.next(route.operation);
      if (fault === 'throttle') throw armErrors.tooManyRequests(deps.throttleRetryAfterSeconds);
      if (fault === 'server-error') throw armErrors.internal(500);
      reply = intercepted ?? (await route.handle(ctx));
    } catch (e) {
      const err = asArmError(e);
      if (err.status === 500 && err.code === 'InternalServerError' && err.message.startsWith('fake internal error')) {
        console.error('arm fake: handler failed', e);
      }
      reply = { status: err.status, body: err.toBody(), headers: err.extra.headers ?? {} };
      entry.code = err.code;
    }
    entry.status = reply.status;
    send(res, method, reply);
  };
}

function send(res: ServerResponse, method: string, reply: Reply): void {
  const headers: Record<string, string | number> = {
    'x-ms-request-id': randomUUID(),
    'cache-control': 'no-cache',
    ...(reply.headers ?? {}),
  };
  let payload = '';
  if (reply.body !== undefined && method !== 'HEAD') {
    payload = JSON.stringify(reply.body);
    headers['content-type'] = 'application/json; charset=utf-8';
  }
  headers['content-length'] = Buffer.byteLength(payload);
  res.writeHead(reply.status, headers);
  res.end(payload);
}

function checkApiVersion(query: URLSearchParams, supported: readonly string[]): string {
  const given = query.getAll('api-version');
  if (given.length === 0 || given.every((v) => v === '')) throw armErrors.missingApiVersion();
  for (const v of given) if (!supported.includes(v)) throw armErrors.invalidApiVersion(v, supported);
  return given[0] as string;
}

const is = (segment: string | undefined, word: string): boolean => segment?.toLowerCase() === word;

function resolve(
  deps: ServerDeps,
  byType: Map<string, ResourceKind>,
  versionsOf: (ns: string) => string[],
  method: string,
  pathname: string,
): Route {
  const noRoute = (): never => {
    throw armErrors.noRoute(method, pathname);
  };
  const segs = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (!is(segs[0], 'subscriptions') || !segs[1]) return noRoute();
  const { core, groups } = deps;
  if (segs[1].toLowerCase() !== core.state.subscriptionId.toLowerCase()) throw armErrors.subscriptionNotFound(segs[1]);
  const rest = segs.slice(2);
  const rv = RESOURCES_API_VERSIONS;

  if (is(rest[0], 'resourcegroups')) {
    const rg = rest[1];
    if (rg === undefined) {
      if (method !== 'GET') return noRoute();
      return { operation: 'resourceGroups.list', apiVersions: rv, handle: (ctx) => groups.list(ctx) };
    }
    if (rest.length === 2) {
      const resourceId = core.state.groupId(rg);
      switch (method) {
        case 'GET':
          return { operation: 'resourceGroups.get', apiVersions: rv, resourceId, handle: () => groups.get(rg) };
        case 'HEAD':
          return { operation: 'resourceGroups.checkExistence', apiVersions: rv, resourceId, handle: () => groups.head(rg) };
        case 'PUT':
          return { operation: 'resourceGroups.createOrUpdate', apiVersions: rv, resourceId, handle: (ctx) => groups.put(ctx, rg) };
        case 'DELETE':
          return { operation: 'resourceGroups.delete', apiVersions: rv, resourceId, handle: (ctx) => groups.delete(ctx, rg) };
        default:
          throw armErrors.notImplemented(`${method} on resource groups`);
      }
    }
    if (is(rest[2], 'resources') && rest.length === 3 && method === 'GET') {
      return { operation: 'resources.listByResourceGroup', apiVersions: rv, handle: (ctx) => groups.listResources(ctx, rg) };
    }
    if (is(rest[2], 'providers') && rest.length >= 5) return providerRoute(deps, byType, method, rest.slice(3), rg, noRoute);
    return noRoute();
  }
  if (is(rest[0], 'resources') && rest.length === 1 && method === 'GET') {
    return { operation: 'resources.list', apiVersions: rv, handle: (ctx) => groups.listResources(ctx) };
  }
  if (is(rest[0], 'operationresults') && rest.length === 2 && method === 'GET') {
    const id = rest[1] as string;
    return { operation: 'resourceGroups.operationResult', apiVersions: rv, handle: () => core.ops.locationReply(operation(core, id)) };
  }
  if (is(rest[0], 'providers') && rest[1]) {
    const ns = rest[1];
    if (is(rest[2], 'locations') && rest.length === 6 && method === 'GET') {
      const id = rest[5] as string;
      if (is(rest[4], 'operations')) {
        return { operation: 'operations.status', apiVersions: versionsOf(ns), handle: () => core.ops.statusReply(operation(core, id)) };
      }
      if (is(rest[4], 'operationresults')) {
        return { operation: 'operations.result', apiVersions: versionsOf(ns), handle: () => core.ops.locationReply(operation(core, id)) };
      }
    }
    if (rest.length === 3) return providerRoute(deps, byType, method, rest.slice(1), undefined, noRoute);
  }
  return noRoute();
}

function operation(core: Core, id: string) {
  const op = core.ops.get(id);
  if (!op) throw new ArmError(404, 'NotFound', `Operation ${id} was not found.`);
  return op;
}

/** `p` = [ns, type1, name1, type2, name2, ..., (trailing)]. */
function providerRoute(
  deps: ServerDeps,
  byType: Map<string, ResourceKind>,
  method: string,
  p: string[],
  rg: string | undefined,
  noRoute: () => never,
): Route {
  const { core } = deps;
  const [ns, ...parts] = p as [string, ...string[]];
  const types = parts.filter((_, i) => i % 2 === 0);
  const names = parts.filter((_, i) => i % 2 === 1);
  const typeOf = (n: number): string => [ns, ...types.slice(0, n)].join('/');
  const group = rg === undefined ? undefined : (core.state.getGroup(rg)?.name ?? rg);

  if (types.length > names.length) {
    // a collection (children of the named resources), or an action on the named resource
    const listKind = byType.get(typeOf(types.length).toLowerCase());
    if (listKind && method === 'GET') {
      const parentId = names.length && group ? core.state.resourceId(group, typeOf(names.length), names) : undefined;
      return {
        operation: `${listKind.operationGroup}.list`,
        apiVersions: listKind.apiVersions,
        handle: (ctx) => {
          if (group) core.state.requireGroup(group);
          if (parentId && group && !core.state.get(parentId)) {
            throw armErrors.resourceNotFound(typeOf(names.length), names, group);
          }
          const records = parentId
            ? core.state.children(parentId, listKind.type)
            : core.state.list({ type: listKind.type, ...(group ? { resourceGroup: group } : {}) });
          return { status: 200, body: { value: records.map((r) => listKind.serialize(r, ctx)) } };
        },
      };
    }
    const kind = byType.get(typeOf(names.length).toLowerCase());
    const action = types[types.length - 1] as string;
    if (!kind || !group || names.length === 0) return noRoute();
    const ref = refFor(core, kind, group, names);
    return {
      operation: `${kind.operationGroup}.${action}`,
      apiVersions: kind.apiVersions,
      resourceId: ref.id,
      handle: (ctx) => {
        core.state.requireGroup(group);
        const rec = core.state.get(ref.id);
        if (!rec) throw kind.notFound?.(ref) ?? armErrors.resourceNotFound(kind.type, ref.names, group);
        const key = `${method} ${action}`.toLowerCase();
        const found = Object.entries(kind.actions ?? {}).find(([k]) => k.toLowerCase() === key)?.[1];
        if (!found) throw armErrors.notImplemented(`${method} ${action} on ${kind.type}`);
        return found(ctx, rec);
      },
    };
  }

  const kind = byType.get(typeOf(types.length).toLowerCase());
  if (!kind || !group) return noRoute();
  const ref = refFor(core, kind, group, names);
  const verb = { GET: 'get', PUT: 'createOrUpdate', DELETE: 'delete', PATCH: 'update', HEAD: 'checkExistence' }[method] ?? method.toLowerCase();
  return {
    operation: `${kind.operationGroup}.${verb}`,
    apiVersions: kind.apiVersions,
    resourceId: ref.id,
    handle: (ctx) => {
      switch (method) {
        case 'GET': {
          core.state.requireGroup(group);
          const rec = core.state.get(ref.id);
          if (!rec) throw kind.notFound?.(ref) ?? armErrors.resourceNotFound(kind.type, ref.names, group);
          return { status: 200, body: kind.serialize(rec, ctx) };
        }
        case 'PUT':
          if (!kind.put) throw armErrors.notImplemented(`PUT on ${kind.type}`);
          return kind.put(ctx, ref);
        case 'DELETE': {
          core.state.requireGroup(group);
          const rec = core.state.get(ref.id);
          if (!rec) return { status: 204 };
          if (!kind.delete) throw armErrors.notImplemented(`DELETE on ${kind.type}`);
          return kind.delete(ctx, rec);
        }
        default:
          throw armErrors.notImplemented(`${method} on ${kind.type}`);
      }
    },
  };
}

function refFor(core: Core, kind: ResourceKind, group: string, names: string[]): ResourceRef {
  const types = kind.type.split('/');
  const ref: ResourceRef = {
    id: core.state.resourceId(group, kind.type, names),
    type: kind.type,
    names,
    name: names[names.length - 1] as string,
    resourceGroup: group,
  };
  if (names.length > 1) ref.parentId = core.state.resourceId(group, types.slice(0, -1).join('/'), names.slice(0, -1));
  return ref;
}
