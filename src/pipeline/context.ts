/**
 * What a target driver gets for one build: the plan, a recorder that puts every resource in the
 * ledger around its create call, the build's facts, its log and the abort signal.
 */
import type { Plan } from '../definition/plan.js';
import type { BuildLog } from './build-log.js';
import type { BuildState } from './build-state.js';
import type { BuildPaths } from './state-dir.js';
import type { Ledger, LedgerEntry, ResourceLocation, ResourceRole } from './ledger.js';

export interface CreateResource extends ResourceLocation {
  kind: string;
  name: string;
  role?: ResourceRole;
  extra?: Record<string, string>;
}

export class ResourceRecorder {
  constructor(
    private readonly ledger: Ledger,
    private readonly plan: Plan,
  ) {}

  /**
   * Records the intent, runs `create` (which returns the new resource's id), records the id. If
   * `create` throws, the intent stays in the ledger: the resource may exist anyway (a timeout after
   * the cloud accepted the call), and cleanup finds it by name.
   */
  async create<T extends { id: string; extra?: Record<string, string> }>(resource: CreateResource, create: () => Promise<T>): Promise<T> {
    const intent = await this.ledger.intend({
      build: this.plan.buildId,
      target: this.plan.target,
      role: resource.role ?? 'temporary',
      kind: resource.kind,
      name: resource.name,
      region: resource.region,
      zone: resource.zone,
      group: resource.group,
      extra: resource.extra,
    });
    const result = await create();
    await this.ledger.created(intent.seq, result.id, result.extra);
    return result;
  }

  /** Records a resource that exists already (e.g. a copy the cloud made on its own). */
  async adopt(resource: CreateResource & { id: string }): Promise<LedgerEntry> {
    return this.ledger.intend({
      build: this.plan.buildId,
      target: this.plan.target,
      role: resource.role ?? 'temporary',
      kind: resource.kind,
      name: resource.name,
      id: resource.id,
      region: resource.region,
      zone: resource.zone,
      group: resource.group,
      extra: resource.extra,
    });
  }

  /** The build's live entries of a kind, oldest first. */
  list(kind?: string): LedgerEntry[] {
    return this.ledger.entries({ build: this.plan.buildId }).filter((e) => !kind || e.kind === kind);
  }

  /** The one live entry of a kind; throws if there is none (a step ran out of order). */
  one(kind: string): LedgerEntry & { id: string } {
    const entry = this.list(kind).find((e) => e.id !== undefined);
    if (!entry?.id) throw new Error(`build ${this.plan.buildId} has no ${kind} yet`);
    return entry as LedgerEntry & { id: string };
  }

  async forget(entry: LedgerEntry): Promise<void> {
    await this.ledger.remove(entry.seq);
  }
}

export interface BuildContext {
  plan: Plan;
  resources: ResourceRecorder;
  state: BuildState;
  paths: BuildPaths;
  log: BuildLog;
  signal: AbortSignal;
}
