/**
 * Launching an instance with everything RunInstances makes in the ledger first: an intent per volume
 * (found later through the instance's client token and the volume's device), then the instance's.
 * The volumes come first so that undo, in reverse order, terminates the instance before it looks at
 * the volumes (which mostly go with it). Shared by the build's launch and the validation instance.
 */
import { randomBytes } from 'node:crypto';
import { KilnError } from '../../core/errors.js';
import type { BuildContext } from '../../pipeline/context.js';
import { scopeOf, targetPlan } from './build-context.js';
import type { Ec2Api } from './clients.js';
import { clientToken } from './copies.js';
import { describeWithVolumes, runInstance, volumeAt, waitRunning, type LaunchSpec } from './instance.js';

/** A volume RunInstances creates: its device, and the purpose that names its ledger entry. */
export interface LaunchedVolume {
  device: string;
  purpose: string;
}

export interface RunningInstance {
  id: string;
  publicIp?: string;
  zone?: string;
  /** Volume id by device, for every LaunchedVolume. */
  volumes: Record<string, string>;
}

export async function launchRecorded(
  api: Ec2Api,
  ctx: BuildContext,
  spec: Omit<LaunchSpec, 'clientToken'>,
  volumes: LaunchedVolume[],
  options: { token: string; runningMs: number },
): Promise<RunningInstance> {
  const t = targetPlan(ctx);
  const devices = volumes.map((v) => v.device);
  const launch = async (): Promise<RunningInstance> => {
    const created = await ctx.resources.create({ kind: 'instance', name: spec.name, region: t.region, extra: { clientToken: options.token } }, async () => ({
      id: await runInstance(api, scopeOf(ctx, spec.name), { ...spec, clientToken: options.token }),
    }));
    await ctx.state.setFacts({ instanceId: created.id });
    ctx.log.line(`aws: instance ${created.id} (${spec.instanceType}) launched in ${t.region}; waiting for it to run`);
    const scope = scopeOf(ctx, created.id);
    const running = await describeWithVolumes(api, scope, await waitRunning(api, scope, created.id, options.runningMs), devices);
    const ids = Object.fromEntries(devices.map((device) => [device, volumeAt(running, device) ?? '']));
    return { id: created.id, publicIp: running.PublicIpAddress, zone: running.Placement?.AvailabilityZone, volumes: ids };
  };
  // The first volume's intent is the outermost: recorded first, its id known last.
  const recorded = volumes.reduceRight<() => Promise<RunningInstance>>(
    (inner, volume) => async () => {
      const entry = { kind: 'volume', name: `${spec.name}-${volume.purpose}`, region: t.region, extra: { clientToken: options.token, device: volume.device } };
      const { instance } = await ctx.resources.create(entry, async () => {
        const instance = await inner();
        return { id: instance.volumes[volume.device] ?? '', instance };
      });
      return instance;
    },
    launch,
  );
  return recorded();
}

/**
 * A launch's ClientToken: a pending intent's (a launch retried after its answer was lost gets that
 * same instance back from EC2), else a fresh one. Never a count of the build's launches: undo
 * removes their entries (an `--on-error ask` retry, each validation), so a count would repeat, and
 * EC2 would answer a repeated token with the instance it just terminated.
 */
export function launchToken(ctx: BuildContext): string {
  return pendingToken(ctx) ?? clientToken('kiln', ctx.plan.buildId, 'launch', randomBytes(4).toString('hex'));
}

function pendingToken(ctx: BuildContext): string | undefined {
  return ctx.resources.list('instance').find((e) => !e.id && e.extra?.clientToken)?.extra?.clientToken;
}

/** The public address SSH needs; a subnet that assigns none is the user's to fix. */
export function publicAddress(instance: RunningInstance, region: string): string {
  if (instance.publicIp) return instance.publicIp;
  throw new KilnError('CLOUD', `instance ${instance.id} has no public IP address: use a subnet that assigns public addresses`, {
    resource: instance.id,
    region,
    code: 'NoPublicIp',
  });
}
