/**
 * HTTP front of the fake: matches `/compute/v1/projects/{project}/...` routes to handlers, checks
 * the bearer token, injects faults (FaultInjector), runs per-method interceptors, replays the
 * operation of a repeated `requestId`, and logs every request for tests.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FaultInjector } from '../common/faults.js';
import { readBody } from '../common/http.js';
import type { Call, GceCore, Handler } from './core.js';
import {
  GceHttpError,
  backendError,
  badRequest,
  noRoute,
  rateLimitExceeded,
  unauthenticated,
  type OperationErrorSpec,
} from './errors.js';
import {
  getGlobalOperation,
  getZoneOperation,
  listGlobalOperations,
  listZoneOperations,
  renderOperation,
  waitGlobalOperation,
  waitZoneOperation,
} from './operations.js';
import * as disks from './resources/disks.js';
import * as firewalls from './resources/firewalls.js';
import * as images from './resources/images.js';
import * as actions from './resources/instance-actions.js';
import * as instances from './resources/instances.js';

interface Route {
  verb: 'GET' | 'POST' | 'DELETE';
  pattern: RegExp;
  names: string[];
  method: string;
  handler: Handler;
  /** Returns an Operation (so a repeated requestId replays it). */
  mutating: boolean;
}

function route(verb: Route['verb'], template: string, method: string, handler: Handler): Route {
  const names: string[] = [];
  const source = template
    .split('/')
    .map((part) => {
      if (!part.startsWith(':')) return part;
      names.push(part.slice(1));
      return '([^/]+)';
    })
    .join('/');
  const mutating = verb !== 'GET' && !method.endsWith('.wait') && !method.endsWith('.setIamPolicy');
  return { verb, pattern: new RegExp(`^${source}$`), names, method, handler, mutating };
}

const G = 'projects/:project/global';
const Z = 'projects/:project/zones/:zone';
const A = 'projects/:project/aggregated';

export const ROUTES: Route[] = [
  route('GET', `${G}/images/family/:family`, 'images.getFromFamily', images.getImageFromFamily),
  route('GET', `${G}/images/:resource/getIamPolicy`, 'images.getIamPolicy', images.getImageIamPolicy),
  route('POST', `${G}/images/:resource/setIamPolicy`, 'images.setIamPolicy', images.setImageIamPolicy),
  route('POST', `${G}/images/:resource/setLabels`, 'images.setLabels', images.setImageLabels),
  route('POST', `${G}/images/:image/deprecate`, 'images.deprecate', images.deprecateImage),
  route('GET', `${G}/images/:image`, 'images.get', images.getImage),
  route('DELETE', `${G}/images/:image`, 'images.delete', images.deleteImage),
  route('GET', `${G}/images`, 'images.list', images.listImages),
  route('POST', `${G}/images`, 'images.insert', images.insertImage),
  route('GET', `${G}/firewalls/:firewall`, 'firewalls.get', firewalls.getFirewall),
  route('DELETE', `${G}/firewalls/:firewall`, 'firewalls.delete', firewalls.deleteFirewall),
  route('GET', `${G}/firewalls`, 'firewalls.list', firewalls.listFirewalls),
  route('POST', `${G}/firewalls`, 'firewalls.insert', firewalls.insertFirewall),
  route('GET', `${G}/operations`, 'globalOperations.list', listGlobalOperations),
  route('GET', `${G}/operations/:operation`, 'globalOperations.get', getGlobalOperation),
  route('POST', `${G}/operations/:operation/wait`, 'globalOperations.wait', waitGlobalOperation),
  route('GET', `${Z}/operations`, 'zoneOperations.list', listZoneOperations),
  route('GET', `${Z}/operations/:operation`, 'zoneOperations.get', getZoneOperation),
  route('POST', `${Z}/operations/:operation/wait`, 'zoneOperations.wait', waitZoneOperation),
  route('POST', `${Z}/disks/:resource/setLabels`, 'disks.setLabels', disks.setDiskLabels),
  route('GET', `${Z}/disks/:disk`, 'disks.get', disks.getDisk),
  route('DELETE', `${Z}/disks/:disk`, 'disks.delete', disks.deleteDisk),
  route('GET', `${Z}/disks`, 'disks.list', disks.listDisks),
  route('POST', `${Z}/disks`, 'disks.insert', disks.insertDisk),
  route('POST', `${Z}/instances/:instance/stop`, 'instances.stop', actions.stopInstance),
  route('POST', `${Z}/instances/:instance/start`, 'instances.start', actions.startInstance),
  route('POST', `${Z}/instances/:instance/setMetadata`, 'instances.setMetadata', actions.setInstanceMetadata),
  route('GET', `${Z}/instances/:instance/serialPort`, 'instances.getSerialPortOutput', actions.getSerialPortOutput),
  route('GET', `${Z}/instances/:instance/getGuestAttributes`, 'instances.getGuestAttributes', actions.getGuestAttributes),
  route('GET', `${Z}/instances/:instance`, 'instances.get', instances.getInstance),
  route('DELETE', `${Z}/instances/:instance`, 'instances.delete', instances.deleteInstance),
  route('GET', `${Z}/instances`, 'instances.list', instances.listInstances),
  route('POST', `${Z}/instances`, 'instances.insert', instances.insertInstance),
  route('GET', `${A}/instances`, 'instances.aggregatedList', instances.aggregatedListInstances),
  route('GET', `${A}/disks`, 'disks.aggregatedList', disks.aggregatedListDisks),
];

/** What an interceptor may decide for one request (undefined: serve it normally). */
export type InterceptResult =
  | undefined
  | void
  /** Answer with this HTTP error (e.g. `notFound(...)`, `new GceHttpError(403, 'forbidden', '...')`). */
  | { error: GceHttpError }
  /** Accept the call; its operation ends DONE with this error and no side effects. */
  | { operationError: OperationErrorSpec }
  /** Accept the call; its operation stays PENDING (no side effects yet) until `hold` settles. */
  | { hold: Promise<void> };

export type Interceptor = (call: Readonly<Call>) => InterceptResult | Promise<InterceptResult>;

export interface RequestLogEntry {
  method: string;
  verb: string;
  path: string;
  status: number;
}

export class GceRouter {
  readonly interceptors = new Map<string, Interceptor[]>();
  readonly requests: RequestLogEntry[] = [];
  /** Called once each when the next request arrives, before it is served. */
  readonly arrivals: Array<(method: string) => void> = [];

  constructor(
    private readonly core: GceCore,
    private readonly faults: FaultInjector,
  ) {}

  handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const verb = req.method ?? 'GET';
    let method = 'unknown';
    let status = 200;
    let body: unknown;
    try {
      const raw = await readBody(req);
      if (!/^Bearer \S+/.test(req.headers.authorization ?? '')) throw unauthenticated();
      const path = url.pathname.replace(/^\/compute\/v1\//, '');
      const match = url.pathname.startsWith('/compute/v1/') ? this.match(verb, path) : undefined;
      if (!match) throw noRoute(verb, url.pathname);
      method = match.route.method;
      for (const arrived of this.arrivals.splice(0)) arrived(method);
      const call: Call = { method, params: match.params, query: url.searchParams, body: parseBody(raw) };
      body = await this.serve(match.route, call);
    } catch (err) {
      if (!(err instanceof GceHttpError)) throw err;
      status = err.httpStatus;
      body = err.body();
    }
    this.requests.push({ method, verb, path: url.pathname + url.search, status });
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
    res.end(JSON.stringify(body));
  };

  private match(verb: string, path: string): { route: Route; params: Record<string, string> } | undefined {
    for (const r of ROUTES) {
      if (r.verb !== verb) continue;
      const m = r.pattern.exec(path);
      if (!m) continue;
      const params: Record<string, string> = {};
      r.names.forEach((name, i) => (params[name] = decodeURIComponent(m[i + 1] ?? '')));
      return { route: r, params };
    }
    return undefined;
  }

  private async serve(r: Route, call: Call): Promise<unknown> {
    const fault = this.faults.next(call.method);
    if (fault === 'throttle') throw rateLimitExceeded(call.method);
    if (fault === 'server-error') throw backendError();
    for (const interceptor of this.interceptors.get(call.method) ?? []) {
      const decision = await interceptor(call);
      if (!decision) continue;
      if ('error' in decision) throw decision.error;
      if ('hold' in decision) call.hold = decision.hold;
      else call.forcedOperationError = decision.operationError;
      break;
    }
    if (r.mutating) {
      const replay = this.core.operations.byRequestId(call.params.project ?? '', call.query.get('requestId'));
      if (replay) return renderOperation(replay);
    }
    return r.handler(this.core, call);
  }
}

function parseBody(raw: string): Record<string, unknown> {
  if (!raw.trim()) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw badRequest('Invalid JSON payload received.');
  }
  if (parsed === '' || parsed === null) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw badRequest('Invalid JSON payload received. Expected an object.');
  return parsed as Record<string, unknown>;
}
