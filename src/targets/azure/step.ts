/**
 * What every Azure step works with: the build context, the Azure slice of the plan, the clients,
 * the build's resource group and location, and `record`, which puts a resource in the ledger around
 * its create call with the location fields and subscription a later `kiln cleanup` needs.
 */
import { KilnError } from '../../core/errors.js';
import type { AzureTargetPlan } from '../../definition/plan.js';
import type { BuildContext } from '../../pipeline/context.js';
import type { ResourceRole } from '../../pipeline/ledger.js';
import type { AzureClients, CallOptions } from './clients.js';
import { ARM_TYPE, resourceId, type AzureKind } from './ids.js';

export interface AzureStep {
  ctx: BuildContext;
  t: AzureTargetPlan;
  c: AzureClients;
  /** The resource group the build VM and its network live in. */
  group: string;
  location: string;
  tags: Record<string, string>;
  /** Poll interval and the step's abort signal, for every SDK call. */
  call: CallOptions;
  log: (line: string) => void;
  /** ARM id of a build resource of `kind` named `name` (in the build group unless `group` says otherwise). */
  id(kind: keyof typeof ARM_TYPE, name: string | string[], group?: string): string;
  record<T extends { id: string; extra?: Record<string, string> }>(
    kind: AzureKind,
    name: string,
    create: () => Promise<T>,
    where?: { group?: string; region?: string; role?: ResourceRole; extra?: Record<string, string> },
  ): Promise<T>;
}

export function azurePlan(ctx: BuildContext): AzureTargetPlan {
  if (ctx.plan.targetPlan.kind !== 'azure') throw new KilnError('INTERNAL', `azure driver got a ${ctx.plan.targetPlan.kind} plan`);
  return ctx.plan.targetPlan;
}

export function azureStep(ctx: BuildContext, c: AzureClients): AzureStep {
  const t = azurePlan(ctx);
  return {
    ctx,
    t,
    c,
    group: t.resourceGroup.name,
    location: t.location,
    tags: { ...ctx.plan.tags },
    call: c.call(ctx.signal),
    log: (line) => ctx.log.line(`azure: ${line}`),
    id: (kind, name, group) => resourceId(c.subscription, group ?? t.resourceGroup.name, ARM_TYPE[kind], Array.isArray(name) ? name : [name]),
    record: (kind, name, create, where = {}) =>
      ctx.resources.create(
        {
          kind,
          name,
          group: where.group ?? t.resourceGroup.name,
          region: where.region ?? t.location,
          ...(where.role ? { role: where.role } : {}),
          extra: { subscription: c.subscription, ...where.extra },
        },
        create,
      ),
  };
}

export function mustFact(ctx: BuildContext, key: string): string {
  const value = ctx.state.fact(key);
  if (value === undefined) throw new KilnError('INTERNAL', `build ${ctx.plan.buildId} has no ${key} yet: was a step skipped?`);
  return value;
}
