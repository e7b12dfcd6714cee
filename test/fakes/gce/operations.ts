/**
 * Operation resources: every mutating call returns one (zonal or global), PENDING at first, then
 * RUNNING while its work runs (timed by `Transitions` and by the MachineBackend), then DONE, with
 * `error.errors[]` and httpErrorStatusCode when the work failed. `wait` blocks until DONE or a bound.
 */
import { randomBytes } from 'node:crypto';
import type { Transitions } from '../common/transitions.js';
import type { Call, CoreOptions, Handler } from './core.js';
import { param } from './core.js';
import { HTTP_REASON_PHRASES, OperationFailure, notFound, type OperationErrorSpec } from './errors.js';
import { checkZone, link, zonePath } from './links.js';
import { listPage } from './list.js';
import type { GceState, OperationRecord } from './state.js';

export interface OperationSpec {
  project: string;
  zone?: string;
  operationType: string;
  targetLink: string;
  targetId: string;
}

export interface OperationWork {
  /** The work; throw OperationFailure to end the operation with that error. */
  run: () => Promise<void>;
  /** Undo request-time changes when the work fails or an interceptor forced an error. */
  rollback?: () => void | Promise<void>;
}

/** Delay names (for `Transitions`) used by operations. */
export const OPERATION_RUNNING = 'operation.running';
export const OPERATION_DONE = 'operation.done';

export class Operations {
  private waiters = new Map<OperationRecord, Set<() => void>>();
  private timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly state: GceState,
    private readonly transitions: Transitions,
    private readonly options: CoreOptions,
  ) {}

  /** Resolves after the delay configured for `name`. */
  after(name: string): Promise<void> {
    return new Promise((resolve) => this.transitions.schedule(name, resolve));
  }

  /** The operation a previous call with this requestId started, for idempotent retries. */
  byRequestId(project: string, requestId: string | null): OperationRecord | undefined {
    if (!requestId) return undefined;
    return [...this.state.operations.values()].find((o) => o.project === project && o.requestId === requestId);
  }

  start(spec: OperationSpec, call: Call, work: OperationWork): OperationRecord {
    const op: OperationRecord = {
      ...spec,
      id: this.state.ids.id(),
      name: `operation-${Date.now()}-${randomBytes(7).toString('hex').slice(0, 13)}-${randomBytes(4).toString('hex')}-${randomBytes(4).toString('hex')}`,
      status: 'PENDING',
      progress: 0,
      insertTime: this.state.now(),
      user: this.options.user,
      requestId: call.query.get('requestId') ?? undefined,
    };
    this.state.operations.set(op.name, op);
    const begin = () => this.transitions.schedule(OPERATION_RUNNING, async () => {
      op.status = 'RUNNING';
      op.startTime = this.state.now();
      try {
        if (call.forcedOperationError) throw new OperationFailure(call.forcedOperationError);
        await work.run();
        await this.after(OPERATION_DONE);
        this.finish(op);
      } catch (err) {
        try {
          await work.rollback?.();
        } catch (rollbackErr) {
          console.error('fake GCE: rollback failed', rollbackErr);
        }
        this.finish(
          op,
          err instanceof OperationFailure
            ? err.spec
            : { code: 'INTERNAL_ERROR', message: `Internal error: ${String(err)}`, httpStatus: 500 },
        );
      }
    });
    // A held call's operation stays PENDING until the hold ends (a slow or backlogged API).
    if (call.hold) void call.hold.then(begin);
    else begin();
    return op;
  }

  private finish(op: OperationRecord, error?: OperationErrorSpec): void {
    op.status = 'DONE';
    op.progress = 100;
    op.endTime = this.state.now();
    if (error) op.error = error;
    for (const wake of this.waiters.get(op) ?? []) wake();
    this.waiters.delete(op);
  }

  /** Resolves when the operation is DONE or after `boundMs`, whichever comes first. */
  wait(op: OperationRecord, boundMs = this.options.waitBoundMs): Promise<void> {
    if (op.status === 'DONE') return Promise.resolve();
    return new Promise((resolve) => {
      const set = this.waiters.get(op) ?? new Set();
      this.waiters.set(op, set);
      const wake = () => {
        clearTimeout(timer);
        this.timers.delete(timer);
        set.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, boundMs);
      this.timers.add(timer);
      set.add(wake);
    });
  }

  /** Releases every blocked wait (on close). */
  close(): void {
    for (const set of this.waiters.values()) for (const wake of [...set]) wake();
    this.waiters.clear();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}

export function operationPath(op: OperationRecord): string {
  return op.zone
    ? `${zonePath(op.project, op.zone)}/operations/${op.name}`
    : `projects/${op.project}/global/operations/${op.name}`;
}

export function renderOperation(op: OperationRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {
    kind: 'compute#operation',
    id: op.id,
    name: op.name,
    operationType: op.operationType,
    targetLink: op.targetLink,
    targetId: op.targetId,
    status: op.status,
    user: op.user,
    progress: op.progress,
    insertTime: op.insertTime,
    selfLink: link(operationPath(op)),
  };
  if (op.zone) out.zone = link(zonePath(op.project, op.zone));
  if (op.startTime) out.startTime = op.startTime;
  if (op.endTime) out.endTime = op.endTime;
  if (op.error) {
    const status = op.error.httpStatus ?? 400;
    out.error = {
      errors: [{ code: op.error.code, message: op.error.message, ...(op.error.location ? { location: op.error.location } : {}) }],
    };
    out.httpErrorStatusCode = status;
    out.httpErrorMessage = HTTP_REASON_PHRASES[status] ?? 'ERROR';
  }
  return out;
}

function lookup(core: { state: GceState }, call: Call, zonal: boolean): OperationRecord {
  const project = param(call, 'project');
  const zone = zonal ? param(call, 'zone') : undefined;
  const name = param(call, 'operation');
  const op = core.state.findOperation(project, zone, name);
  if (!op) {
    throw notFound(zone ? `${zonePath(project, zone)}/operations/${name}` : `projects/${project}/global/operations/${name}`);
  }
  return op;
}

export const getZoneOperation: Handler = (core, call) => renderOperation(lookup(core, call, true));
export const getGlobalOperation: Handler = (core, call) => renderOperation(lookup(core, call, false));

/** zoneOperations.list / globalOperations.list: the scope's operations, filterable (e.g. by targetLink and status). */
function listOperations(core: { state: GceState }, call: Call, zonal: boolean): unknown {
  const project = param(call, 'project');
  const zone = zonal ? param(call, 'zone') : undefined;
  if (zone) checkZone(zone);
  const scope = zone ? `${zonePath(project, zone)}/operations` : `projects/${project}/global/operations`;
  const items = [...core.state.operations.values()].filter((o) => o.project === project && o.zone === zone).map(renderOperation);
  return { kind: 'compute#operationList', id: scope, ...listPage(call, items), selfLink: link(scope) };
}

export const listZoneOperations: Handler = (core, call) => listOperations(core, call, true);
export const listGlobalOperations: Handler = (core, call) => listOperations(core, call, false);

export const waitZoneOperation: Handler = async (core, call) => {
  const op = lookup(core, call, true);
  await core.operations.wait(op);
  return renderOperation(op);
};

export const waitGlobalOperation: Handler = async (core, call) => {
  const op = lookup(core, call, false);
  await core.operations.wait(op);
  return renderOperation(op);
};
