/**
 * What a build has done so far, on disk: the steps completed, the facts learnt on the way (base
 * image id, public address, host keys...) and the artifacts captured. It is what `--resume` reads.
 */
import type { Artifact } from '../targets/target.js';
import type { PipelineStepName } from '../definition/plan.js';
import { readJsonIfExists, removeStaleTemps, writeJsonDurably } from './durable-file.js';

export interface BuildStateData {
  buildId: string;
  completed: PipelineStepName[];
  facts: Record<string, string>;
  artifacts: Artifact[];
}

export class BuildState {
  private constructor(
    private readonly path: string,
    private data: BuildStateData,
  ) {}

  static async open(path: string, buildId: string): Promise<BuildState> {
    await removeStaleTemps(path);
    const existing = await readJsonIfExists<BuildStateData>(path);
    return new BuildState(path, existing ?? { buildId, completed: [], facts: {}, artifacts: [] });
  }

  get completed(): readonly PipelineStepName[] {
    return this.data.completed;
  }

  get artifacts(): readonly Artifact[] {
    return this.data.artifacts;
  }

  fact(key: string): string | undefined {
    return this.data.facts[key];
  }

  async setFacts(facts: Record<string, string>): Promise<void> {
    this.data.facts = { ...this.data.facts, ...facts };
    await this.save();
  }

  async complete(step: PipelineStepName, artifacts: Artifact[] = []): Promise<void> {
    if (!this.data.completed.includes(step)) this.data.completed.push(step);
    this.data.artifacts.push(...artifacts);
    await this.save();
  }

  private async save(): Promise<void> {
    await writeJsonDurably(this.path, this.data);
  }
}
