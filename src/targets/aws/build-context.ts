/** What every AWS step reads from its BuildContext: the AWS plan, the scope of a call, a recorded fact. */
import { KilnError } from '../../core/errors.js';
import type { AwsTargetPlan } from '../../definition/plan.js';
import type { BuildContext } from '../../pipeline/context.js';
import type { CallScope } from './clients.js';
import { BUILD_TAG } from './tagging.js';

export function targetPlan(ctx: BuildContext): AwsTargetPlan {
  if (ctx.plan.targetPlan.kind !== 'aws') throw new KilnError('INTERNAL', `aws driver got a ${ctx.plan.targetPlan.kind} plan`);
  return ctx.plan.targetPlan;
}

export function scopeOf(ctx: BuildContext, resource: string): CallScope {
  return { region: targetPlan(ctx).region, resource, signal: ctx.signal };
}

export function mustFact(ctx: BuildContext, key: string): string {
  const value = ctx.state.fact(key);
  if (value === undefined) throw new KilnError('INTERNAL', `build ${ctx.plan.buildId} has no ${key} yet: was a step skipped?`);
  return value;
}

/**
 * The plan's tags with `kiln:build` naming this context's build: a validation instance's build id
 * (`<build>-check`) differs from the plan's, and a resource adopted after a lost answer must carry it.
 */
export function buildTags(ctx: BuildContext): Record<string, string> {
  return { ...ctx.plan.tags, [BUILD_TAG]: ctx.plan.buildId };
}
