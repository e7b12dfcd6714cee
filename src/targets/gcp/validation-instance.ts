/**
 * The validation instance on GCE (`kiln validate`, `kiln build --validate`): launched from the
 * build's images as a customer would, in the plan's zone with the size's machine type: the boot
 * disk from the root image and the data disk from the data image (blank when there is none), both
 * deleted with the instance; or, with `dataDisk`, an existing disk the customer keeps, attached at
 * the definition's device name, never recorded and never deleted. A firewall rule of its own lets
 * SSH in from the builder only, and the validation key is the only one authorized. Its names derive
 * from the validation build id, so they never meet the build's.
 */
import { KilnError } from '../../core/errors.js';
import { checkedName } from '../../definition/names.js';
import type { GcpTargetPlan } from '../../definition/plan.js';
import type { BuildContext } from '../../pipeline/context.js';
import type { Artifact, InstanceOptions, SshAccess } from '../target.js';
import type { GceApi, Scope } from './client.js';
import { isNotFound } from './errors.js';
import { instanceHostKeys } from './hostkeys.js';
import { diskPath, natAddress } from './instance.js';
import { gceLabels } from './labels.js';
import { createInstance, createSshFirewall, scopeOf } from './recorded.js';

export interface ValidationEnvironment {
  project: string;
  /** Where SSH may come from: the plan's sshCidr or the builder's address. */
  sourceRange: string;
  sshPort: number;
  timeouts: { operationMs: number; hostKeysMs: number };
}

/** `kiln-<validation build id>-<purpose>`. */
export function validationNames(buildId: string) {
  const name = (purpose: string) => checkedName('gce', `kiln-${buildId}-${purpose}`, 'buildId');
  return { instance: name('vm'), bootDisk: name('boot'), dataDisk: name('data'), firewall: name('ssh'), networkTag: name('vm') };
}

export async function launchValidationInstance(
  api: GceApi,
  ctx: BuildContext,
  t: GcpTargetPlan,
  images: Artifact[],
  options: InstanceOptions,
  env: ValidationEnvironment,
): Promise<SshAccess> {
  const { project } = env;
  const { zone } = t;
  const names = validationNames(ctx.plan.buildId);
  const root = imageOf(images, 'root');
  const dataImage = imageOf(images, 'data');
  if (!root) throw new KilnError('VALIDATION', `no GCE root image among the artifacts to validate (${images.map((a) => a.id).join(', ') || 'none'})`);
  // Checked before anything is created: a missing or busy disk is the caller's to fix.
  const existing = options.dataDisk ? await existingDataDisk(api, scopeOf(ctx), project, zone, options.dataDisk) : undefined;
  const tags = { ...ctx.plan.tags, 'kiln:build': ctx.plan.buildId };
  const { data: dataPlan, root: rootPlan } = ctx.plan.disks;
  const deviceName = dataPlan.deviceName ?? 'kiln-data';

  await createSshFirewall(api, ctx, { project, name: names.firewall, network: t.network, sourceRange: env.sourceRange, targetTag: names.networkTag, tags }, env.timeouts.operationMs);
  await createInstance(
    api,
    ctx,
    {
      project,
      zone,
      name: names.instance,
      description: `kiln validation instance (temporary) of ${root.name ?? root.id}`,
      machineType: t.machineType,
      boot: { name: names.bootDisk, sourceImage: root.id, sizeGb: rootPlan.sizeGb, type: rootPlan.type },
      data: existing ? { existing, deviceName } : { name: names.dataDisk, sourceImage: dataImage?.id, sizeGb: dataPlan.sizeGb, type: dataPlan.type, deviceName },
      autoDelete: true,
      network: t.network,
      subnetwork: t.subnetwork,
      networkTag: names.networkTag,
      sshUser: ctx.plan.access.sshUser,
      sshPublicKey: options.publicKey,
      labels: gceLabels(tags),
    },
    env.timeouts.operationMs,
  );
  // What stop() needs to find this instance rather than the build's.
  await ctx.state.setFacts({ project, instance: names.instance });
  const host = await natAddress(api, scopeOf(ctx), project, zone, names.instance);
  const data = existing ?? (dataImage ? `a new disk from ${dataImage.name ?? dataImage.id}` : 'a new blank disk');
  ctx.log.line(`gcp: validation instance ${names.instance} (${t.machineType}) running in ${zone} at ${host}, data disk ${data}`);
  const hostKeys = await instanceHostKeys(api, scopeOf(ctx), project, zone, names.instance, env.timeouts.hostKeysMs);
  return { host, port: env.sshPort, username: ctx.plan.access.sshUser, privateKey: options.privateKey, hostKeys };
}

function imageOf(images: Artifact[], disk: 'root' | 'data'): Artifact | undefined {
  return images.find((a) => a.kind === 'image' && a.disk === disk);
}

const DISK_REF = /^(?:https:\/\/[^/]+\/compute\/v1\/)?(?:projects\/([a-z0-9.:-]+)\/)?zones\/([a-z0-9-]+)\/disks\/([a-z0-9-]+)$/;

/**
 * The path of the customer's disk, given by name (in the plan's zone) or path/selfLink, once it is
 * known to exist and to be attached to nothing.
 */
async function existingDataDisk(api: GceApi, scope: Scope, project: string, zone: string, ref: string): Promise<string> {
  const field = '--data-disk';
  const m = DISK_REF.exec(ref);
  const name = m ? m[3] : /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ref) ? ref : undefined;
  if (!name) {
    throw new KilnError('INPUT', `${field}: "${ref}" is not a GCE disk: expected a disk name or projects/<project>/zones/<zone>/disks/<name>`, { field });
  }
  const diskProject = m?.[1] ?? project;
  const diskZone = m?.[2] ?? zone;
  const resource = diskPath(diskProject, diskZone, name);
  if (diskZone !== zone || diskProject !== project) {
    const where = `project ${project}, zone ${zone} (targets.gcp)`;
    throw new KilnError('INPUT', `${field}: ${resource} is not where the instance launches, ${where}: a disk attaches only in its own project and zone`, { field, resource });
  }
  let users: string[];
  try {
    const [disk] = await api.call(scope, 'reading disk', resource, () => api.clients.disks.get({ project, zone, disk: name }));
    users = disk.users ?? [];
  } catch (err) {
    if (!isNotFound(err)) throw err;
    throw new KilnError('INPUT', `${field}: GCE disk ${resource} does not exist`, { field, resource, reason: 'notFound' }, { cause: err });
  }
  if (users.length > 0) {
    const user = users.map((u) => u.replace(/^https:\/\/[^/]+\/compute\/v1\//, '')).join(', ');
    throw new KilnError('INPUT', `${field}: GCE disk ${resource} is attached to ${user}: detach it first (a disk in use by another instance cannot be attached read-write)`, {
      field,
      resource,
      reason: 'resourceInUseByAnotherResource',
    });
  }
  return resource;
}
