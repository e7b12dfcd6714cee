/**
 * kiln-manifest.json: the machine-readable result of a run, rewritten (atomically) as each build
 * finishes, so it exists even when some builds fail or the run is interrupted. Its shape is versioned
 * by `manifestVersion`; additions keep the version, changes to existing fields bump it.
 */
import type { PipelineStepName } from '../definition/plan.js';
import type { SizeName, TargetName } from '../definition/schema.js';
import type { Artifact } from '../targets/target.js';
import type { BuildResult } from './build.js';
import { writeJsonDurably } from './durable-file.js';

export const MANIFEST_VERSION = 1;

export interface Manifest {
  manifestVersion: typeof MANIFEST_VERSION;
  runId: string;
  definition: { name: string; path: string; sha256: string };
  version: string;
  startedAt: string;
  updatedAt: string;
  builds: ManifestBuild[];
}

export interface ManifestBuild {
  buildId: string;
  target: TargetName;
  size: SizeName;
  version: string;
  status: BuildResult['status'] | 'running' | 'pending';
  error?: { code: string; message: string; step?: PipelineStepName };
  sourceImage?: string;
  k3sVersion: string;
  helmVersion: string;
  charts: { release: string; chart: string; version: string }[];
  artifacts: Artifact[];
  timingsMs: Partial<Record<PipelineStepName, number>>;
  /** Resources left behind (on-error abort or failed deletes), for `kiln cleanup --run`. */
  leftovers: { kind: string; id?: string; name: string; region?: string }[];
  /** With `--validate`: the checks an instance booted from the image passed or failed. */
  validation?: { passed: boolean; checks: { name: string; passed: boolean; output: string }[] };
}

export function manifestEntry(result: BuildResult): ManifestBuild {
  const { plan } = result;
  return {
    buildId: result.buildId,
    target: plan.target,
    size: plan.size,
    version: plan.version,
    status: result.status,
    ...(result.error ? { error: { code: result.error.code, message: result.error.message, ...(result.failedStep ? { step: result.failedStep } : {}) } } : {}),
    ...(result.sourceImage ? { sourceImage: result.sourceImage } : {}),
    k3sVersion: plan.software.k3s.version,
    helmVersion: plan.software.helm.version,
    charts: plan.software.charts.map((c) => ({ release: c.release, chart: c.chart, version: c.version })),
    artifacts: result.artifacts,
    timingsMs: result.timingsMs,
    leftovers: result.leftovers.map((e) => ({ kind: e.kind, name: e.name, ...(e.id ? { id: e.id } : {}), ...(e.region ? { region: e.region } : {}) })),
    ...(result.validation ? { validation: { passed: result.validation.every((c) => c.passed), checks: result.validation.map((c) => ({ name: c.name, passed: c.passed, output: c.actual })) } } : {}),
  };
}

/** Keeps the manifest of a run current on disk; builds report in any order, concurrently. */
export class ManifestWriter {
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly paths: string[],
    private readonly manifest: Manifest,
  ) {}

  get current(): Manifest {
    return this.manifest;
  }

  async update(entry: ManifestBuild): Promise<void> {
    const index = this.manifest.builds.findIndex((b) => b.buildId === entry.buildId);
    if (index >= 0) this.manifest.builds[index] = entry;
    else this.manifest.builds.push(entry);
    this.manifest.updatedAt = new Date().toISOString();
    const write = this.queue.then(() => Promise.all(this.paths.map((p) => writeJsonDurably(p, this.manifest, 0o644)))).then(() => undefined);
    this.queue = write.catch(() => undefined);
    await write;
  }
}
