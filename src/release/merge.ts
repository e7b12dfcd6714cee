/**
 * Joining the shard manifests of one run (`kiln build --shard i/n` on n CI runners) into one manifest:
 * every input must be of the same run, definition and version; a build may appear in several inputs
 * only if it is identical in each. The result lists builds by target, then size (XS..XL), and is
 * written atomically, so a reader never sees half a file.
 */
import { InputError, type InputIssue } from '../core/errors.js';
import { SIZES, TARGETS } from '../definition/schema.js';
import { writeJsonDurably } from '../pipeline/durable-file.js';
import type { Manifest, ManifestBuild } from '../pipeline/manifest.js';
import { readManifest } from './manifest-schema.js';

export interface ManifestInput {
  file: string;
  manifest: Manifest;
}

export interface MergeResult {
  manifest: Manifest;
  /** Builds that appeared in more than one input (identical each time). */
  duplicates: string[];
}

/** Reads, checks and merges manifest files, and writes the result to `out`. */
export async function mergeManifestFiles(out: string, files: string[]): Promise<MergeResult> {
  const inputs: ManifestInput[] = [];
  const issues: InputIssue[] = [];
  for (const file of files) {
    try {
      inputs.push({ file, manifest: await readManifest(file) });
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      issues.push(...err.issues);
    }
  }
  if (issues.length > 0) throw new InputError(issues);
  const result = mergeManifests(inputs);
  await writeJsonDurably(out, result.manifest, 0o644);
  return result;
}

export function mergeManifests(inputs: ManifestInput[]): MergeResult {
  const [first] = inputs;
  if (!first) throw new InputError({ field: '<manifest...>', message: 'expected at least one manifest to merge, found none' });
  const issues = inputs.slice(1).flatMap((input) => mismatches(first, input));
  if (issues.length > 0) throw new InputError(issues);

  const seen = new Map<string, { file: string; index: number; build: ManifestBuild; canonical: string }>();
  const duplicates = new Set<string>();
  for (const { file, manifest } of inputs) {
    manifest.builds.forEach((build, index) => {
      const canonical = canonicalJson(build);
      const earlier = seen.get(build.buildId);
      if (!earlier) {
        seen.set(build.buildId, { file, index, build, canonical });
      } else if (earlier.canonical === canonical) {
        duplicates.add(build.buildId);
      } else {
        const where = earlier.file === file ? `builds[${earlier.index}] of this file` : `${earlier.file} (builds[${earlier.index}])`;
        issues.push({
          file,
          field: `builds[${index}]`,
          message: `build ${build.buildId} (status ${build.status}) is also in ${where} (status ${earlier.build.status}) with different content: a build may appear twice only if identical (were shards of a resumed run mixed?)`,
        });
      }
    });
  }
  if (issues.length > 0) throw new InputError(issues);

  const builds = [...seen.values()].map((s) => s.build).sort(compareBuilds);
  const times = (key: 'startedAt' | 'updatedAt') => inputs.map((i) => i.manifest[key]).sort((a, b) => Date.parse(a) - Date.parse(b));
  return {
    manifest: { ...first.manifest, startedAt: times('startedAt')[0] ?? first.manifest.startedAt, updatedAt: times('updatedAt').at(-1) ?? first.manifest.updatedAt, builds },
    duplicates: [...duplicates].sort(),
  };
}

/** Run, definition and version must be the first input's; every difference is one issue. */
function mismatches(first: ManifestInput, input: ManifestInput): InputIssue[] {
  const a = first.manifest;
  const b = input.manifest;
  const issue = (field: string, what: string, expected: string, found: string): InputIssue => ({
    file: input.file,
    field,
    message: `expected ${what} ${expected} (as in ${first.file}), found ${found}: only the shards of one run can be merged`,
  });
  const issues: InputIssue[] = [];
  if (b.runId !== a.runId) issues.push(issue('runId', 'run', JSON.stringify(a.runId), JSON.stringify(b.runId)));
  if (b.definition.name !== a.definition.name) issues.push(issue('definition.name', 'definition', JSON.stringify(a.definition.name), JSON.stringify(b.definition.name)));
  else if (b.definition.sha256 !== a.definition.sha256) {
    issues.push(issue('definition.sha256', 'the definition file with sha256', a.definition.sha256.slice(0, 12), `${b.definition.sha256.slice(0, 12)} (the definition changed between shards)`));
  }
  if (b.version !== a.version) issues.push(issue('version', 'version', JSON.stringify(a.version), JSON.stringify(b.version)));
  return issues;
}

/** Targets in kiln's order (aws, azure, gcp, local), then sizes XS..XL. */
export function compareBuilds(a: Pick<ManifestBuild, 'target' | 'size' | 'buildId'>, b: Pick<ManifestBuild, 'target' | 'size' | 'buildId'>): number {
  return TARGETS.indexOf(a.target) - TARGETS.indexOf(b.target) || SIZES.indexOf(a.size) - SIZES.indexOf(b.size) || a.buildId.localeCompare(b.buildId);
}

/** JSON with object keys sorted, so two builds compare equal whatever order their keys were written in. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) : v,
  );
}
