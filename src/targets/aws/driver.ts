/**
 * The AWS target: builds on EC2 with `@aws-sdk/client-ec2`.
 * prepare = newest base AMI + a per-build ed25519 key (imported) + a security group letting SSH in
 * from the builder only; launch = the instance with root and data volumes (tagged, deleted on
 * termination, deterministic ClientToken); capture = one AMI of both volumes; publish = region
 * copies in parallel and launch permissions everywhere; launchInstance = a validation instance from
 * the AMI (validation-instance.ts). Every resource is in the ledger (with its region) before its
 * create call returns, so `destroy` works from a fresh driver given only an entry.
 */
import type { EC2ClientConfig } from '@aws-sdk/client-ec2';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { KilnError } from '../../core/errors.js';
import type { BuildContext } from '../../pipeline/context.js';
import type { LedgerEntry } from '../../pipeline/ledger.js';
import { generateKeyPair } from '../../ssh/index.js';
import type { RateLimits } from '../rate-limits.js';
import type { Artifact, DestroyOptions, InstanceOptions, SshAccess, TaggedResource, TargetDriver } from '../target.js';
import type { BuilderAddressLookup } from '../builder-address.js';
import { findBaseImage } from './base-image.js';
import { mustFact, scopeOf, targetPlan } from './build-context.js';
import { DEFAULT_TIMING, Ec2Api, type Ec2Timing } from './clients.js';
import { allOrFirstError, copyToRegions, description, markPublished, share } from './copies.js';
import { destroyEntry } from './destroy.js';
import { loggedHostKeys } from './hostkeys.js';
import { createImage, imageSnapshots, waitAvailable } from './image.js';
import { DEFAULT_DATA_DEVICE, ebsVolume, stopInstance } from './instance.js';
import { launchToken, launchRecorded, publicAddress } from './launch.js';
import { listTaggedIn } from './tagged.js';
import { createTemporaryAccess } from './temporary-access.js';
import { launchValidationInstance } from './validation-instance.js';

export interface AwsTimeouts {
  /** The instance to reach `running`. */
  runningMs: number;
  /** A clean shutdown before the stop is forced. */
  stopMs: number;
  /** The AMI to become available (large volumes take tens of minutes). */
  imageMs: number;
  /** Each region copy to become available. */
  copyMs: number;
  terminateMs: number;
  /** A security group or volume to be free of its instance when deleting. */
  dependencyMs: number;
  /** Polling the console for the VM's SSH host keys. */
  hostKeysMs: number;
  /** A given data volume to be attached to the validation instance. */
  attachMs: number;
}

export const DEFAULT_TIMEOUTS: AwsTimeouts = {
  runningMs: 10 * 60_000,
  stopMs: 10 * 60_000,
  imageMs: 90 * 60_000,
  copyMs: 150 * 60_000,
  terminateMs: 10 * 60_000,
  dependencyMs: 10 * 60_000,
  hostKeysMs: 3 * 60_000,
  attachMs: 5 * 60_000,
};

export interface AwsDriverOptions {
  /** Over the SDK's defaults and kiln's retry settings, for every client (tests: endpoint, credentials, retries). */
  clientConfig?: Partial<EC2ClientConfig>;
  /** Regions `listTagged` searches; default $KILN_AWS_REGIONS (comma-separated), else the SDK's region. */
  regions?: string[];
  /** Finds the builder's public address when the plan has no sshCidr (default: checkip.amazonaws.com). */
  builderAddress?: BuilderAddressLookup;
  timing?: Partial<Ec2Timing>;
  timeouts?: Partial<AwsTimeouts>;
  /** Test only: where SSH really is (default: the instance's public IP, port 22). */
  sshEndpoint?: { host?: string; port?: number };
  /** The run's API rate limiters, shared with the other builds (default: the driver's own). */
  rateLimits?: RateLimits;
}

export class AwsDriver implements TargetDriver {
  readonly name = 'aws' as const;
  private ec2?: Ec2Api;
  private readonly timeouts: AwsTimeouts;

  constructor(private readonly options: AwsDriverOptions = {}) {
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  }

  async prepare(ctx: BuildContext): Promise<void> {
    const t = targetPlan(ctx);
    const scope = scopeOf(ctx, t.baseImage.name);
    const base = await findBaseImage(this.api(), scope, t.baseImage);
    await ctx.state.setFacts({
      sourceImage: `${base.id} (${base.name})`,
      baseImageId: base.id,
      rootDeviceName: base.rootDeviceName,
      ...(base.rootSizeGb ? { baseRootGb: String(base.rootSizeGb) } : {}),
    });
    ctx.log.line(`aws: base image ${base.id} (${base.name}, ${base.creationDate}) in ${t.region}`);
    if (t.publish.public && t.encrypted) ctx.log.line('aws: warning: EC2 refuses public launch permissions on AMIs with encrypted snapshots');

    await mkdir(ctx.paths.root, { recursive: true, mode: 0o700 });
    const key = generateKeyPair(`kiln-${ctx.plan.buildId}`);
    ctx.log.addSecret(key.privateKey);
    const keyPath = resolve(ctx.paths.sshKey);
    await ctx.resources.create({ kind: 'file', name: keyPath, extra: { holds: 'ssh-key' } }, async () => {
      await writeFile(keyPath, key.privateKey, { mode: 0o600 });
      await chmod(keyPath, 0o600);
      return { id: keyPath };
    });
    const access = await createTemporaryAccess(this.api(), ctx, {
      keyPairName: t.names.keyPair,
      securityGroupName: t.names.securityGroup,
      publicKey: key.publicKey,
      builderAddress: this.options.builderAddress,
    });
    await ctx.state.setFacts({ keyPairId: access.keyPairId, securityGroupId: access.securityGroupId, vpcId: access.vpcId, sshCidr: access.sshCidr });
  }

  async launch(ctx: BuildContext): Promise<void> {
    const t = targetPlan(ctx);
    const rootDevice = mustFact(ctx, 'rootDeviceName');
    const dataDevice = ctx.plan.disks.data.deviceName ?? DEFAULT_DATA_DEVICE;
    const baseRootGb = Number(ctx.state.fact('baseRootGb') ?? 0);
    const rootDisk = { ...ctx.plan.disks.root, sizeGb: Math.max(ctx.plan.disks.root.sizeGb, baseRootGb) };
    const instance = await launchRecorded(
      this.api(),
      ctx,
      {
        name: t.names.instance,
        imageId: mustFact(ctx, 'baseImageId'),
        instanceType: t.instanceType,
        keyName: t.names.keyPair,
        securityGroupId: mustFact(ctx, 'securityGroupId'),
        subnetId: t.subnetId,
        blockDevices: [ebsVolume(rootDevice, rootDisk, t), ebsVolume(dataDevice, ctx.plan.disks.data, t)],
        tags: ctx.plan.tags,
      },
      [
        { device: rootDevice, purpose: 'root' },
        { device: dataDevice, purpose: 'data' },
      ],
      { token: launchToken(ctx), runningMs: this.timeouts.runningMs },
    );
    const dataVolumeId = instance.volumes[dataDevice] ?? '';
    await ctx.state.setFacts({ sshHost: publicAddress(instance, t.region), dataVolumeId });
    ctx.log.line(`aws: instance ${instance.id} running at ${instance.publicIp}; data volume ${dataVolumeId} at ${dataDevice}`);
  }

  async sshAccess(ctx: BuildContext): Promise<SshAccess> {
    const id = mustFact(ctx, 'instanceId');
    return {
      host: this.options.sshEndpoint?.host ?? mustFact(ctx, 'sshHost'),
      port: this.options.sshEndpoint?.port ?? 22,
      username: ctx.plan.access.sshUser,
      privateKey: await readFile(ctx.paths.sshKey, 'utf8'),
      hostKeys: await loggedHostKeys(this.api(), scopeOf(ctx, id), id, this.timeouts.hostKeysMs, ctx.log.line),
    };
  }

  async runtimeEnv(ctx: BuildContext): Promise<Record<string, string>> {
    return { KILN_DATA_DISK_REF: mustFact(ctx, 'dataVolumeId') };
  }

  async stop(ctx: BuildContext): Promise<void> {
    const id = mustFact(ctx, 'instanceId');
    await stopInstance(this.api(), scopeOf(ctx, id), id, this.timeouts.stopMs, ctx.log.line);
    ctx.log.line(`aws: instance ${id} stopped`);
  }

  async capture(ctx: BuildContext): Promise<Artifact[]> {
    const t = targetPlan(ctx);
    const instanceId = mustFact(ctx, 'instanceId');
    const image = await ctx.resources.create({ kind: 'image', name: t.names.image, region: t.region, role: 'artifact', extra: { instanceId } }, async () => ({
      id: await createImage(this.api(), scopeOf(ctx, t.names.image), { instanceId, name: t.names.image, description: description(ctx), build: ctx.plan.buildId, tags: ctx.plan.tags }),
    }));
    const scope = scopeOf(ctx, image.id);
    const snapshots = await imageSnapshots(this.api(), scope, image.id, 2);
    for (const s of snapshots) {
      await ctx.resources.adopt({ kind: 'snapshot', name: `${t.names.image} ${s.device}`, id: s.snapshotId, region: t.region, role: 'artifact', extra: { imageId: image.id, device: s.device } });
    }
    await ctx.state.setFacts({ imageId: image.id, imageSnapshots: String(snapshots.length) });
    ctx.log.line(`aws: image ${image.id} (${t.names.image}) with snapshots ${snapshots.map((s) => s.snapshotId).join(', ')}; waiting for it`);
    await waitAvailable(this.api(), scope, image.id, this.timeouts.imageMs);
    ctx.log.line(`aws: image ${image.id} available in ${t.region}`);
    return [{ kind: 'ami', id: image.id, name: t.names.image, region: t.region, disk: 'both' }];
  }

  async publish(ctx: BuildContext, captured: Artifact[]): Promise<Artifact[]> {
    const t = targetPlan(ctx);
    const source = captured.find((a) => a.kind === 'ami' && a.region === t.region);
    if (!source) throw new KilnError('INTERNAL', `build ${ctx.plan.buildId} has no captured AMI in ${t.region} to publish`);
    const copies = await copyToRegions(this.api(), ctx, t, { id: source.id, region: t.region, snapshots: Number(ctx.state.fact('imageSnapshots') ?? 2) }, this.timeouts.copyMs);
    const everywhere = [{ id: source.id, region: t.region }, ...copies.map((c) => ({ id: c.id, region: c.region ?? t.region }))];
    await allOrFirstError(everywhere.map((ami) => share(this.api(), ami.region, ami.id, t, ctx.signal)));
    const who = [...(t.publish.public ? ['everyone'] : []), ...t.publish.accounts];
    if (who.length > 0) ctx.log.line(`aws: launch permission for ${who.join(', ')} on ${everywhere.length} AMI(s)`);
    await markPublished(this.api(), ctx);
    return copies;
  }

  async launchInstance(ctx: BuildContext, images: Artifact[], options: InstanceOptions): Promise<SshAccess> {
    const env = { timeouts: this.timeouts, builderAddress: this.options.builderAddress, sshEndpoint: this.options.sshEndpoint };
    return launchValidationInstance(this.api(), ctx, images, options, env);
  }

  async destroy(entry: LedgerEntry, options: DestroyOptions): Promise<void> {
    await destroyEntry(this.api(), entry, options, this.timeouts);
  }

  async listTagged(options: { signal: AbortSignal }): Promise<TaggedResource[]> {
    const regions = this.options.regions ?? regionsFromEnv() ?? [await this.api().defaultRegion()];
    const found = await Promise.all(regions.map((region) => listTaggedIn(this.api(), region, options.signal)));
    return found.flat();
  }

  /** Closes the SDK clients' connections. */
  close(): void {
    this.ec2?.destroy();
    this.ec2 = undefined;
  }

  private api(): Ec2Api {
    this.ec2 ??= new Ec2Api(this.options.clientConfig, { ...DEFAULT_TIMING, ...this.options.timing }, this.options.rateLimits);
    return this.ec2;
  }
}

function regionsFromEnv(): string[] | undefined {
  const list = (process.env.KILN_AWS_REGIONS ?? '').split(',').map((r) => r.trim()).filter(Boolean);
  return list.length > 0 ? list : undefined;
}
