/**
 * Interception and timed steps.
 *
 * Interceptors are registered per name. Two kinds of names exist:
 *  - request operations, `<operationGroup>.<verb>` as the SDKs name them
 *    (`virtualMachines.createOrUpdate`, `virtualMachines.deallocate`, `galleryImageVersions.get`,
 *    `resourceGroups.delete`, `resources.list`, `operations.status`, `operations.result`...):
 *    run before the request is served; returning an ArmError (or throwing one) answers with it,
 *    returning a Reply answers with that reply;
 *  - async steps (the names in `ARM_STEPS`): run when an LRO reaches that step, after its
 *    transition delay; returning or throwing an ArmError fails the step, and so the operation
 *    (for `galleryImageVersion.replicate`, only that region fails; `ctx.region` says which).
 */
import type { Transitions } from '../common/transitions.js';
import { ArmError } from './errors.js';

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface InterceptContext {
  /** The request operation or step name the interceptor was registered for. */
  name: string;
  /** ARM id of the resource concerned, when there is one. */
  resourceId?: string;
  method?: string;
  /** Request path (without the query) for request operations. */
  path?: string;
  /** Parsed request body for request operations. */
  body?: unknown;
  /** Region being replicated, for `galleryImageVersion.replicate`. */
  region?: string;
}

export type Interceptor = (
  ctx: InterceptContext,
) => ArmError | Reply | void | undefined | Promise<ArmError | Reply | void | undefined>;

/** Every async step the fake waits on; a transition delay or an interceptor can target each. */
export const ARM_STEPS = [
  'resourceGroup.delete',
  'network.provision',
  'network.delete',
  'vm.create',
  'vm.update',
  'vm.start',
  'vm.powerOff',
  'vm.deallocate',
  'vm.delete',
  'disk.create',
  'disk.delete',
  'image.create',
  'image.delete',
  'gallery.create',
  'gallery.delete',
  'galleryImage.create',
  'galleryImage.delete',
  'galleryImageVersion.create',
  'galleryImageVersion.replicate',
  'galleryImageVersion.update',
  'galleryImageVersion.delete',
] as const;
export type ArmStep = (typeof ARM_STEPS)[number];

export class Interceptors {
  private readonly byName = new Map<string, Interceptor[]>();

  /** Registers `fn` for `name`; returns a function that removes it. */
  add(name: string, fn: Interceptor): () => void {
    const list = this.byName.get(name) ?? [];
    list.push(fn);
    this.byName.set(name, list);
    return () => {
      const current = this.byName.get(name) ?? [];
      this.byName.set(
        name,
        current.filter((f) => f !== fn),
      );
    };
  }

  /** Runs the interceptors for `ctx.name`: throws the first ArmError, returns the first Reply. */
  async run(ctx: InterceptContext): Promise<Reply | undefined> {
    for (const fn of [...(this.byName.get(ctx.name) ?? [])]) {
      const outcome = await fn(ctx);
      if (outcome instanceof ArmError) throw outcome;
      if (outcome) return outcome;
    }
    return undefined;
  }
}

export class Steps {
  constructor(
    private readonly transitions: Transitions,
    private readonly interceptors: Interceptors,
  ) {}

  /**
   * Waits the transition delay configured for `name` (next tick by default), then lets the
   * step's interceptors fail it. Without `intercept`, only the delay applies.
   */
  async wait(name: ArmStep, ctx: Omit<InterceptContext, 'name'> = {}, intercept = true): Promise<void> {
    await new Promise<void>((resolve) => this.transitions.schedule(name, resolve));
    if (intercept) await this.interceptors.run({ ...ctx, name });
  }
}
