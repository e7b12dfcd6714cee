/**
 * The Azure target. prepare: resource group (temporary, or an existing one), per-build ed25519 key,
 * virtual network, NSG allowing SSH from the builder only, public IP, NIC. launch: the VM from the
 * marketplace image with its OS disk and an empty data disk at the plan's LUN. stop: deallocate and
 * generalize. capture: a managed image and/or a Compute Gallery image version replicated to the
 * plan's regions. publish: Reader role assignments on the version. launchInstance: a customer's
 * instance of the image for validation (validation-instance.ts), which stop shuts down. destroy: any
 * ledger entry, from a fresh driver too. Every create goes through the ledger; see the modules for
 * each part.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { KilnError } from '../../core/errors.js';
import { SharedWork } from '../../core/shared-work.js';
import type { BuildContext } from '../../pipeline/context.js';
import type { LedgerEntry } from '../../pipeline/ledger.js';
import { generateKeyPair } from '../../ssh/index.js';
import type { Artifact, DestroyOptions, InstanceOptions, SshAccess, TaggedResource, TargetDriver } from '../target.js';
import { lookupPublicAddress, sshSource, type BuilderAddressLookup } from '../builder-address.js';
import { AzureClientPool, type AzureConnectionOptions } from './clients.js';
import { destroyEntry } from './destroy.js';
import { createVersion, ensureGallery } from './gallery.js';
import { createManagedImage, hyperVGeneration } from './images.js';
import { createNetwork, prepareGroup, publicAddress } from './network.js';
import { shareWithReaders } from './sharing.js';
import { listTagged } from './tagged.js';
import { azurePlan, azureStep, mustFact, type AzureStep } from './step.js';
import { isValidationInstance, launchValidationInstance, validationStep } from './validation-instance.js';
import { launchVm, powerOff, stopAndGeneralize } from './vm.js';

export interface AzureDriverOptions extends AzureConnectionOptions {
  /** This builder's public IPv4 address, when the plan has no sshCidr; default: ask ipify/AWS. */
  builderAddress?: BuilderAddressLookup;
  /**
   * Where to SSH instead of the VM's public IP, port 22 and the plan's user. For tests that stand a
   * local sshd in for the VM; never set in production.
   */
  sshOverride?: (found: { host: string; port: number; username: string }) => { host: string; port: number; username: string };
  /** How long capture waits for gallery replication; default 90 min (the capture step's deadline still applies). */
  replicationTimeoutMs?: number;
  /** How long a delete refused with "in use" is retried; default 10 min. */
  inUseTimeoutMs?: number;
}

export class AzureDriver implements TargetDriver {
  readonly name = 'azure' as const;
  private readonly pool: AzureClientPool;
  /** What the run's builds make once for all of them (the gallery). */
  private readonly shared = new SharedWork();

  constructor(private readonly options: AzureDriverOptions = {}) {
    this.pool = new AzureClientPool(options);
  }

  private async step(ctx: BuildContext): Promise<AzureStep> {
    const t = azurePlan(ctx);
    return azureStep(ctx, await this.pool.clients(t.subscriptionId));
  }

  async prepare(ctx: BuildContext): Promise<void> {
    const s = await this.step(ctx);
    const { t } = s;
    const image = t.baseImage;
    await ctx.state.setFacts({ sourceImage: `${image.publisher}:${image.offer}:${image.sku}:${image.version}`, subscription: s.c.subscription });
    await prepareGroup(s);

    await mkdir(dirname(ctx.paths.sshKey), { recursive: true, mode: 0o700 });
    const key = generateKeyPair(`kiln-${ctx.plan.buildId}`);
    ctx.log.addSecret(key.privateKey);
    await ctx.resources.create({ kind: 'file', name: ctx.paths.sshKey, extra: { holds: 'ssh-key' } }, async () => {
      await writeFile(ctx.paths.sshKey, key.privateKey, { mode: 0o600 });
      return { id: ctx.paths.sshKey };
    });
    await ctx.state.setFacts({ sshPublicKey: key.publicKey });

    const source = await sshSource(ctx.plan.access.sshCidr, this.options.builderAddress ?? lookupPublicAddress, ctx.signal);
    const net = await createNetwork(s, source);
    await ctx.state.setFacts({ nicId: net.nicId, sshSource: source });
    s.log(`network ready in ${s.group}: NIC ${t.names.nic}, public IP ${net.publicIpAddress ?? '(pending)'}`);
  }

  async launch(ctx: BuildContext): Promise<void> {
    const s = await this.step(ctx);
    const vm = await launchVm(s, mustFact(ctx, 'nicId'), mustFact(ctx, 'sshPublicKey'));
    const image = vm.storageProfile?.imageReference;
    const exact = image?.exactVersion;
    if (exact && image?.publisher && image.offer && image.sku) await ctx.state.setFacts({ sourceImage: `${image.publisher}:${image.offer}:${image.sku}:${exact}` });
    const host = await publicAddress(s);
    await ctx.state.setFacts({ sshHost: host, vmId: vm.id ?? '' });
    s.log(`VM ${s.t.names.vm} (${s.t.vmSize}) running at ${host}; data disk at LUN ${ctx.plan.disks.data.deviceName ?? '0'}`);
  }

  async sshAccess(ctx: BuildContext): Promise<SshAccess> {
    return this.access(ctx, mustFact(ctx, 'sshHost'), await readFile(ctx.paths.sshKey, 'utf8'));
  }

  private access(ctx: BuildContext, host: string, privateKey: string): SshAccess {
    const found = { host, port: 22, username: ctx.plan.access.sshUser };
    const where = this.options.sshOverride?.(found) ?? found;
    ctx.log.line('azure: ARM does not publish the VM\'s SSH host keys before the first login (boot diagnostics are not enabled); the host key is not verified, the NSG admits only this builder');
    return { ...where, privateKey, hostKeys: [] };
  }

  async runtimeEnv(): Promise<Record<string, string>> {
    return {}; // the data disk is found by its LUN, which the plan already holds
  }

  async stop(ctx: BuildContext): Promise<void> {
    if (isValidationInstance(ctx)) {
      await powerOff(validationStep(ctx, await this.pool.clients(azurePlan(ctx).subscriptionId)));
      return;
    }
    await stopAndGeneralize(await this.step(ctx));
  }

  async capture(ctx: BuildContext): Promise<Artifact[]> {
    const s = await this.step(ctx);
    const { publish } = s.t;
    if (!publish.managedImage && !publish.gallery) throw new KilnError('INPUT', 'the plan publishes neither a managed image nor a gallery version', { field: 'publish.azure' });
    const vmId = ctx.resources.one('virtual-machine').id;
    const generation = await hyperVGeneration(s);
    const home = publish.gallery ? await ensureGallery(s, generation, this.shared) : undefined;
    const artifacts: Artifact[] = [];
    const image = publish.managedImage ? await createManagedImage(s, vmId, generation) : undefined;
    if (image) artifacts.push(image);
    if (home) artifacts.push(...(await createVersion(s, home, { vmId, ...(image ? { imageId: image.id } : {}) }, this.options.replicationTimeoutMs)));
    return artifacts;
  }

  async launchInstance(ctx: BuildContext, images: Artifact[], options: InstanceOptions): Promise<SshAccess> {
    const s = validationStep(ctx, await this.pool.clients(azurePlan(ctx).subscriptionId));
    const source = await sshSource(ctx.plan.access.sshCidr, this.options.builderAddress ?? lookupPublicAddress, ctx.signal);
    const host = await launchValidationInstance(s, images, options, source);
    return this.access(ctx, host, options.privateKey);
  }

  async publish(ctx: BuildContext, captured: Artifact[]): Promise<Artifact[]> {
    const s = await this.step(ctx);
    const readers = s.t.publish.gallery?.readers ?? [];
    const version = captured.find((a) => a.kind === 'azure-gallery-image-version');
    if (readers.length === 0 || !version) {
      s.log(readers.length ? 'no gallery version to share' : 'nothing to share: the plan names no readers');
      return [];
    }
    await shareWithReaders(s, version.id, readers);
    return [];
  }

  /** Temporary resources of any run, found by the kiln:run tag (for `kiln cleanup --sweep`). */
  async listTagged(options: { signal: AbortSignal }): Promise<TaggedResource[]> {
    return listTagged(this.pool, options.signal);
  }

  async destroy(entry: LedgerEntry, options: DestroyOptions): Promise<void> {
    await destroyEntry(this.pool, entry, options, { ...(this.options.inUseTimeoutMs !== undefined ? { inUseTimeoutMs: this.options.inUseTimeoutMs } : {}) });
  }
}
