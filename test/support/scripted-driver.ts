/**
 * A target driver for pipeline tests: an in-memory "cloud" of live resources, every create going
 * through the real ResourceRecorder, with hooks to fail, hang or misbehave at a chosen step. SSH goes
 * to a real sshd on loopback.
 */
import type { PipelineStepName } from '../../src/definition/plan.js';
import type { BuildContext } from '../../src/pipeline/context.js';
import type { LedgerEntry } from '../../src/pipeline/ledger.js';
import type { Artifact, DestroyOptions, SshAccess, TargetDriver } from '../../src/targets/target.js';

export type Misbehaviour = 'fail' | 'hang' | 'ignore-signal-then-create';
/** A misbehaviour, or a function saying at each call whether there is one (a failure fixed meanwhile). */
export type Misbehave = Partial<Record<PipelineStepName, Misbehaviour | (() => Misbehaviour | undefined)>>;

export class ScriptedDriver implements TargetDriver {
  readonly name = 'local' as const;
  /** id -> kind of every resource that exists in the fake cloud. */
  readonly live = new Map<string, string>();
  readonly calls: string[] = [];
  readonly destroyed: string[] = [];
  private next = 1;

  constructor(
    private readonly ssh: Omit<SshAccess, 'privateKey'> & { privateKey: string },
    private readonly misbehave: Misbehave = {},
  ) {}

  private async make(ctx: BuildContext, kind: string, role: 'temporary' | 'artifact' = 'temporary'): Promise<string> {
    const { id } = await ctx.resources.create({ kind, name: `${kind}-${this.next}`, role }, async () => {
      const id = `${kind}-${this.next++}`;
      this.live.set(id, kind);
      return { id };
    });
    return id;
  }

  private async step(ctx: BuildContext, step: PipelineStepName): Promise<void> {
    this.calls.push(step);
    const rule = this.misbehave[step];
    const how = typeof rule === 'function' ? rule() : rule;
    if (how === 'fail') throw new Error(`${step} failed on purpose`);
    if (how === 'hang') await aborted(ctx.signal);
    if (how === 'ignore-signal-then-create') {
      await aborted(ctx.signal).catch(() => {});
      await this.make(ctx, 'late-resource');
      throw new Error('noticed the abort only after creating something');
    }
  }

  async prepare(ctx: BuildContext): Promise<void> {
    await this.make(ctx, 'key-pair');
    await this.make(ctx, 'security-group');
    await ctx.state.setFacts({ sourceImage: 'base-1' });
    await this.step(ctx, 'prepare');
  }

  async launch(ctx: BuildContext): Promise<void> {
    await this.make(ctx, 'instance');
    await this.step(ctx, 'launch');
  }

  async sshAccess(ctx: BuildContext): Promise<SshAccess> {
    await this.step(ctx, 'connect');
    return this.ssh;
  }

  async runtimeEnv(): Promise<Record<string, string>> {
    return {};
  }

  async stop(ctx: BuildContext): Promise<void> {
    await this.step(ctx, 'stop');
  }

  async capture(ctx: BuildContext): Promise<Artifact[]> {
    const id = await this.make(ctx, 'image', 'artifact');
    await this.step(ctx, 'capture');
    return [{ kind: 'image', id, disk: 'both' }];
  }

  async publish(ctx: BuildContext, captured: Artifact[]): Promise<Artifact[]> {
    const id = await this.make(ctx, 'image-copy', 'artifact');
    await this.step(ctx, 'publish');
    return [...captured, { kind: 'image-copy', id, region: 'elsewhere' }].slice(captured.length);
  }

  async destroy(entry: LedgerEntry, _options: DestroyOptions): Promise<void> {
    const id = entry.id ?? entry.name;
    this.destroyed.push(id);
    this.live.delete(id);
  }
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}
