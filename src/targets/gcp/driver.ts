/**
 * The GCE target: builds on Compute Engine with `@google-cloud/compute` (REST transport).
 * prepare = base image from its family + a per-build ed25519 key + a firewall rule for SSH from the
 * builder only; launch = instance with boot and data disks (device name from the plan), external
 * address, labels; capture = images from both disks; publish = IAM bindings and deprecation of the
 * family's previous image; launchInstance = a validation instance from the captured images (see
 * validation-instance.ts). Every resource is in the ledger (project as `group`, zone as `zone`)
 * before its create call, so `destroy` works from a fresh driver given only a ledger entry.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { KilnError } from '../../core/errors.js';
import type { GcpTargetPlan } from '../../definition/plan.js';
import type { BuildContext } from '../../pipeline/context.js';
import type { LedgerEntry } from '../../pipeline/ledger.js';
import { generateKeyPair } from '../../ssh/index.js';
import type { Artifact, DestroyOptions, InstanceOptions, SshAccess, TaggedResource, TargetDriver } from '../target.js';
import {
  closeClients,
  createClients,
  DEFAULT_RETRY,
  GceApi,
  type ComputeClientOptions,
  type GceClients,
  type RetryPolicy,
} from './client.js';
import { captureImages, publishImages } from './capture.js';
import { environmentClientOptions } from './endpoint.js';
import { destroyEntry } from './destroy.js';
import { lookupPublicAddress, sshSource, type BuilderAddressLookup } from '../builder-address.js';
import { instanceHostKeys } from './hostkeys.js';
import { imageFromFamily } from './images.js';
import { natAddress, stopInstance } from './instance.js';
import { gceLabels } from './labels.js';
import { limitClients } from './rate-limit.js';
import { RateLimits } from '../rate-limits.js';
import { createInstance, createSshFirewall, scopeOf } from './recorded.js';
import { listTaggedIn } from './tagged.js';
import { launchValidationInstance } from './validation-instance.js';

export interface GcpTimeouts {
  /** Any one create/delete operation (default 10 min). */
  operationMs: number;
  /** Images to become READY (default 100 min; large disks take long). */
  imageMs: number;
  /** Polling for the VM's published host keys (default 3 min). */
  hostKeysMs: number;
  /** Stopping the instance (default 10 min). */
  stopMs: number;
}

export const DEFAULT_TIMEOUTS: GcpTimeouts = { operationMs: 10 * 60_000, imageMs: 100 * 60_000, hostKeysMs: 3 * 60_000, stopMs: 10 * 60_000 };

export interface GcpDriverOptions {
  /** Options for every client constructor, over the environment's (tests pass the fake's clientOptions()). */
  clientOptions?: ComputeClientOptions;
  /** Project when the plan names none; else clientOptions.projectId, GOOGLE_CLOUD_PROJECT, then ADC's. */
  project?: string;
  /** Finds the builder's public address when the plan has no sshCidr (default: ask ipify/checkip). */
  builderAddress?: BuilderAddressLookup;
  retry?: Partial<RetryPolicy>;
  /** First delay between polls of operations, image status and host keys (default 1 s). */
  pollMs?: number;
  timeouts?: Partial<GcpTimeouts>;
  /** Port of the VM's SSH server (default 22); tests point it at a loopback sshd. */
  sshPort?: number;
  /** The run's API rate limiters, shared with the other builds (default: the driver's own). */
  rateLimits?: RateLimits;
}

export class GcpDriver implements TargetDriver {
  readonly name = 'gcp' as const;
  private clients?: GceClients;
  private apiInstance?: GceApi;
  private readonly timeouts: GcpTimeouts;

  constructor(private readonly options: GcpDriverOptions = {}) {
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  }

  async prepare(ctx: BuildContext): Promise<void> {
    const t = targetPlan(ctx);
    const project = await this.project(t);
    const base = await imageFromFamily(this.api(), scopeOf(ctx), t.baseImage.project, t.baseImage.family);
    if (!base?.selfLink) {
      const resource = `projects/${t.baseImage.project}/global/images/family/${t.baseImage.family}`;
      throw new KilnError('CLOUD', `GCE: image family ${resource} has no usable image`, { resource, reason: 'notFound' });
    }
    await ctx.state.setFacts({ sourceImage: base.selfLink, project });
    ctx.log.line(`gcp: project ${project}, base image ${base.name} (family ${t.baseImage.project}/${t.baseImage.family})`);

    await mkdir(ctx.paths.root, { recursive: true, mode: 0o700 });
    const key = generateKeyPair(`kiln-${ctx.plan.buildId}`);
    ctx.log.addSecret(key.privateKey);
    const keyPath = resolve(ctx.paths.sshKey);
    await ctx.resources.create({ kind: 'file', name: keyPath, extra: { holds: 'ssh-key' } }, async () => {
      await writeFile(keyPath, key.privateKey, { mode: 0o600 });
      await chmod(keyPath, 0o600);
      return { id: keyPath };
    });
    await ctx.state.setFacts({ clientPublicKey: key.publicKey });

    const sourceRange = await this.sshSourceRange(ctx);
    const rule = { project, name: t.names.firewall, network: t.network, sourceRange, targetTag: t.names.networkTag, tags: ctx.plan.tags };
    await createSshFirewall(this.api(), ctx, rule, this.timeouts.operationMs);
    ctx.log.line(`gcp: firewall rule ${t.names.firewall} allows tcp:22 from ${sourceRange} to tag ${t.names.networkTag}`);
  }

  async launch(ctx: BuildContext): Promise<void> {
    const t = targetPlan(ctx);
    const project = mustFact(ctx, 'project');
    const { zone, names } = t;
    await createInstance(
      this.api(),
      ctx,
      {
        project,
        zone,
        name: names.instance,
        description: 'kiln image build instance (temporary)',
        machineType: t.machineType,
        boot: { name: names.bootDisk, sourceImage: mustFact(ctx, 'sourceImage'), sizeGb: ctx.plan.disks.root.sizeGb, type: ctx.plan.disks.root.type },
        data: { name: names.dataDisk, sizeGb: ctx.plan.disks.data.sizeGb, type: ctx.plan.disks.data.type, deviceName: ctx.plan.disks.data.deviceName ?? 'kiln-data' },
        // They must outlive a stop and exist until their images do; each is deleted on its own.
        autoDelete: false,
        network: t.network,
        subnetwork: t.subnetwork,
        networkTag: names.networkTag,
        sshUser: ctx.plan.access.sshUser,
        sshPublicKey: mustFact(ctx, 'clientPublicKey'),
        labels: gceLabels(ctx.plan.tags),
      },
      this.timeouts.operationMs,
    );
    const natIP = await natAddress(this.api(), scopeOf(ctx), project, zone, names.instance);
    await ctx.state.setFacts({ sshHost: natIP });
    ctx.log.line(`gcp: instance ${names.instance} (${t.machineType}) running in ${zone} at ${natIP}`);
  }

  async sshAccess(ctx: BuildContext): Promise<SshAccess> {
    const t = targetPlan(ctx);
    const project = mustFact(ctx, 'project');
    const hostKeys = await instanceHostKeys(this.api(), scopeOf(ctx), project, t.zone, t.names.instance, this.timeouts.hostKeysMs);
    return {
      host: mustFact(ctx, 'sshHost'),
      port: this.options.sshPort ?? 22,
      username: ctx.plan.access.sshUser,
      privateKey: await readFile(ctx.paths.sshKey, 'utf8'),
      hostKeys,
    };
  }

  async runtimeEnv(): Promise<Record<string, string>> {
    return {}; // the data disk is found by its device name
  }

  /** Stops the build's instance, or the validation instance launchInstance made for this ctx. */
  async stop(ctx: BuildContext): Promise<void> {
    const t = targetPlan(ctx);
    const instance = ctx.state.fact('instance') ?? t.names.instance;
    await stopInstance(this.api(), scopeOf(ctx), mustFact(ctx, 'project'), t.zone, instance, this.timeouts.stopMs);
    ctx.log.line(`gcp: instance ${instance} stopped`);
  }

  async capture(ctx: BuildContext): Promise<Artifact[]> {
    return captureImages(this.api(), ctx, targetPlan(ctx), mustFact(ctx, 'project'), this.timeouts.imageMs);
  }

  async publish(ctx: BuildContext, captured: Artifact[]): Promise<Artifact[]> {
    await publishImages(this.api(), ctx, targetPlan(ctx), mustFact(ctx, 'project'), captured, this.timeouts.operationMs);
    return []; // nothing new: the captured images are shared and stay where they are
  }

  async launchInstance(ctx: BuildContext, images: Artifact[], options: InstanceOptions): Promise<SshAccess> {
    const t = targetPlan(ctx);
    const environment = { project: await this.project(t), sourceRange: await this.sshSourceRange(ctx), sshPort: this.options.sshPort ?? 22, timeouts: this.timeouts };
    return launchValidationInstance(this.api(), ctx, t, images, options, environment);
  }

  async destroy(entry: LedgerEntry, options: DestroyOptions): Promise<void> {
    const project = entry.kind === 'file' ? '' : (entry.group ?? (await this.project(undefined)));
    await destroyEntry(this.api(), entry, project, options, this.timeouts);
  }

  /** Everything in the project labelled with a kiln run, finished builds' images aside (for `kiln cleanup --sweep`). */
  async listTagged(options: { signal: AbortSignal }): Promise<TaggedResource[]> {
    const project = await this.project(undefined);
    return listTaggedIn(this.api(), { log: () => {}, signal: options.signal }, project);
  }

  /** Closes the SDK clients (a finished process need not: REST clients hold no connections open). */
  async close(): Promise<void> {
    const clients = this.clients;
    this.clients = undefined;
    this.apiInstance = undefined;
    if (clients) await closeClients(clients);
  }

  private api(): GceApi {
    if (!this.apiInstance) {
      this.clients = createClients({ ...environmentClientOptions(), ...this.options.clientOptions });
      const limited = limitClients(this.clients, this.options.rateLimits ?? new RateLimits());
      this.apiInstance = new GceApi(limited, { ...DEFAULT_RETRY, ...this.options.retry }, this.options.pollMs ?? 1_000);
    }
    return this.apiInstance;
  }

  private async sshSourceRange(ctx: BuildContext): Promise<string> {
    const sourceRange = await sshSource(ctx.plan.access.sshCidr, this.options.builderAddress ?? lookupPublicAddress, ctx.signal);
    if (sourceRange.endsWith('/0')) ctx.log.line(`gcp: warning: sshCidr ${sourceRange} lets SSH in from anywhere`);
    return sourceRange;
  }

  private async project(t: GcpTargetPlan | undefined): Promise<string> {
    const env = process.env;
    const named = t?.project ?? this.options.project ?? this.options.clientOptions?.projectId ?? env.GOOGLE_CLOUD_PROJECT ?? env.GCLOUD_PROJECT ?? env.CLOUDSDK_CORE_PROJECT;
    if (named) return named;
    try {
      return await this.api().clients.images.getProjectId();
    } catch (err) {
      throw new KilnError('INPUT', 'no GCP project: set targets.gcp.project in the definition, or GOOGLE_CLOUD_PROJECT', { field: 'targets.gcp.project' }, { cause: err });
    }
  }
}

function targetPlan(ctx: BuildContext): GcpTargetPlan {
  if (ctx.plan.targetPlan.kind !== 'gcp') throw new KilnError('INTERNAL', `gcp driver got a ${ctx.plan.targetPlan.kind} plan`);
  return ctx.plan.targetPlan;
}

function mustFact(ctx: BuildContext, key: string): string {
  const value = ctx.state.fact(key);
  if (value === undefined) throw new KilnError('INTERNAL', `build ${ctx.plan.buildId} has no ${key} yet: was a step skipped?`);
  return value;
}
