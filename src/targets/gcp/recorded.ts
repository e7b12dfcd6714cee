/**
 * The creates of the build and the validation instance alike, each through ctx.resources: the SSH
 * firewall rule, and the instance with the disks its insert makes. Each is an intent in the ledger
 * before the call that makes it, so undo and `kiln cleanup` find it even when kiln dies inside the
 * call (destroy then waits for the insert still running on the name, see inflight.ts).
 */
import type { BuildContext } from '../../pipeline/context.js';
import type { GceApi, Scope } from './client.js';
import { insertSshFirewall, type SshFirewall } from './firewall.js';
import { diskPath, insertInstance, instancePath, type InstanceSpec } from './instance.js';

export function scopeOf(ctx: BuildContext): Scope {
  return { log: ctx.log.line, signal: ctx.signal };
}

export async function createSshFirewall(api: GceApi, ctx: BuildContext, rule: SshFirewall, timeoutMs: number): Promise<void> {
  await ctx.resources.create({ kind: 'firewall', name: rule.name, group: rule.project }, async () => ({
    id: await insertSshFirewall(api, scopeOf(ctx), rule, timeoutMs),
  }));
}

/**
 * instances.insert makes the instance and its new disks at once: each is an intent first, disks
 * before the instance, so undo (in reverse order) deletes the instance before the disks it holds.
 * An existing disk it attaches is not kiln's: it is not recorded, so nothing ever deletes it.
 */
export async function createInstance(api: GceApi, ctx: BuildContext, spec: InstanceSpec, timeoutMs: number): Promise<void> {
  const { project, zone } = spec;
  const dataDisk = 'existing' in spec.data ? undefined : spec.data.name;
  // destroy deletes the disks named here after the instance: never an existing one.
  const instance = { kind: 'instance', name: spec.name, zone, group: project, extra: { bootDisk: spec.boot.name, ...(dataDisk ? { dataDisk } : {}) } };
  const insert = () =>
    ctx.resources.create(instance, async () => {
      await insertInstance(api, scopeOf(ctx), spec, timeoutMs);
      return { id: instancePath(project, zone, spec.name) };
    });
  /** `inner` under the intent of a disk it makes. */
  const disk = (name: string, purpose: string, inner: () => Promise<unknown>) => () =>
    ctx.resources.create({ kind: 'disk', name, zone, group: project, extra: { purpose } }, async () => {
      await inner();
      return { id: diskPath(project, zone, name) };
    });
  await disk(spec.boot.name, 'boot', dataDisk ? disk(dataDisk, 'data', insert) : insert)();
}
