/**
 * resolve(definition, target, size, version) -> Plan. Pure and deterministic: the same inputs give
 * the same plan, byte for byte. Inputs that cannot make a valid build (unknown size for the target,
 * an unsafe version, a name a cloud would refuse) are InputErrors here, before anything is created.
 */
import { posix } from 'node:path';
import { bundleGaps } from '../bundle/coverage.js';
import type { VerifiedBundle } from '../bundle/verify.js';
import { InputError } from '../core/errors.js';
import { provisionSteps } from '../provision/steps.js';
import { plannedChecks } from '../validate/checks.js';
import { planAws } from '../targets/aws/plan.js';
import { planAzure } from '../targets/azure/plan.js';
import { planGcp } from '../targets/gcp/plan.js';
import { planLocal } from '../targets/local/plan.js';
import type { LoadedDefinition } from './load.js';
import { buildId, RUN_ID, type NameParts } from './names.js';
import { PLAN_FORMAT, type ChartPlan, type PipelineStepName, type PipelineStepPlan, type Plan, type SoftwarePlan } from './plan.js';
import { SIZES, TARGETS, type Definition, type SizeName, type TargetName } from './schema.js';
import { isSafeUrl, PRODUCT_VERSION } from './values.js';

export interface ResolveOptions {
  runId: string;
  /** Artifact mirrors replacing the definition's sources (`--mirror k3s=URL`). */
  mirrors?: Partial<Record<'k3s' | 'helm' | 'charts', string>>;
  /** A verified offline bundle to take every artifact from (`--bundle`); it must hold all the plan needs. */
  bundle?: Pick<VerifiedBundle, 'path' | 'manifest' | 'manifestSha256'>;
}

export function resolve(loaded: LoadedDefinition, target: string, size: string, version: string, options: ResolveOptions): Plan {
  const { definition } = loaded;
  const targetName = parseTarget(target);
  const sizeName = parseSize(size);
  checkVersion(version);
  checkRunId(options.runId);
  const sizeSpec = definition.sizes[sizeName];
  if (!sizeSpec) {
    throw new InputError({ file: loaded.path, field: 'sizes', message: `no size ${sizeName} (defined: ${Object.keys(definition.sizes).join(', ')})` });
  }
  if (!definition.targets[targetName]) {
    const defined = TARGETS.filter((t) => definition.targets[t]).join(', ');
    throw new InputError({ file: loaded.path, field: 'targets', message: `no target ${targetName} (defined: ${defined})` });
  }
  const parts: NameParts = { runId: options.runId, definition: definition.name, target: targetName, size: sizeName, version };
  const disks = sizeSpec.disks ?? definition.disks;
  const planTarget = { aws: planAws, azure: planAzure, gcp: planGcp, local: planLocal }[targetName];
  const targetResult = withFile(loaded.path, () => planTarget(definition, sizeSpec, parts, disks));
  const localPath = (relative: string) => posix.join(posix.dirname(loaded.path.split('\\').join('/')), relative);
  const software = softwarePlan(definition, sizeName, version, options.mirrors ?? {}, localPath);
  if (options.bundle) software.bundle = checkedBundle(options.bundle, software, definition.name, version);

  return {
    format: PLAN_FORMAT,
    runId: options.runId,
    buildId: buildId(parts),
    definition: { name: definition.name, path: loaded.path, sha256: loaded.sha256 },
    target: targetName,
    size: sizeName,
    version,
    tags: {
      'kiln:run': options.runId,
      'kiln:build': buildId(parts),
      'kiln:definition': definition.name,
      'kiln:version': version,
    },
    targetPlan: targetResult.targetPlan,
    disks: targetResult.disks,
    access: { sshUser: targetResult.sshUser, ...(targetResult.sshCidr ? { sshCidr: targetResult.sshCidr } : {}) },
    software,
    provision: provisionSteps({ definition, target: targetName, version, software, dataDisk: targetResult.disks.data, sshUser: targetResult.sshUser, localPath }),
    checks: plannedChecks(definition, version),
    steps: pipelineSteps(targetResult.steps),
  };
}

function softwarePlan(def: Definition, size: SizeName, version: string, mirrors: ResolveOptions['mirrors'] & object, localPath: (r: string) => string): SoftwarePlan {
  for (const [kind, value] of Object.entries(mirrors)) {
    if (value !== undefined && !isSafeUrl(value)) {
      throw new InputError({ field: `--mirror ${kind}`, message: `expected an http(s) URL without credentials, spaces or quotes, found ${JSON.stringify(value)}` });
    }
  }
  const charts: ChartPlan[] = def.charts.map((chart) => ({
    release: chart.name,
    chart: chart.chart,
    version: chart.version ?? version,
    repository: mirrors.charts ?? def.sources.charts ?? chart.repository,
    namespace: chart.namespace,
    images: chart.images,
    valuesFiles: (def.sizes[size]?.values[chart.name] ?? []).map(localPath),
  }));
  const mirror = def.k3s.registryMirror;
  return {
    k3s: { version: def.k3s.version, baseUrl: mirrors.k3s ?? def.sources.k3s, ...(def.k3s.sha256 ? { sha256: def.k3s.sha256 } : {}) },
    helm: { version: def.helm.version, baseUrl: mirrors.helm ?? def.sources.helm, ...(def.helm.sha256 ? { sha256: def.helm.sha256 } : {}) },
    charts,
    ...(mirror ? { registryMirror: { endpoint: mirror.endpoint, registries: mirror.registries, ...(mirror.caFile ? { caFile: localPath(mirror.caFile) } : {}) } } : {}),
  };
}

function checkedBundle(bundle: NonNullable<ResolveOptions['bundle']>, software: SoftwarePlan, definition: string, version: string): NonNullable<SoftwarePlan['bundle']> {
  const gaps = bundleGaps(software, bundle.manifest);
  if (gaps.length > 0) {
    const madeFor = `${bundle.manifest.definition.name} ${bundle.manifest.version}`;
    throw new InputError({
      file: bundle.path,
      field: '--bundle',
      message: `the bundle (made for ${madeFor}) lacks what this build of ${definition} ${version} needs: ${gaps.join('; ')}; make one with: kiln bundle <definition> --version ${version}`,
    });
  }
  return { path: bundle.path, manifestSha256: bundle.manifestSha256 };
}

const STEP_DESCRIPTIONS: Record<PipelineStepName, string> = {
  prepare: 'find the base image and create temporary access (SSH key, network rule)',
  launch: 'launch the build VM with its root and data disks',
  connect: 'wait for SSH and verify the host key',
  provision: 'run the provisioning scripts in order',
  stop: 'shut the VM down cleanly',
  capture: 'capture the image(s) from the disks',
  validate: 'boot an instance from the image and run the checks (with --validate)',
  publish: 'copy and share the image as the definition says',
};

function pipelineSteps(creates: { prepare: string[]; launch: string[]; capture: string[]; publish: string[] }): PipelineStepPlan[] {
  const order: PipelineStepName[] = ['prepare', 'launch', 'connect', 'provision', 'stop', 'capture', 'publish'];
  return order.map((name) => ({ name, description: STEP_DESCRIPTIONS[name], creates: name in creates ? creates[name as keyof typeof creates] : [] }));
}

export function parseTarget(value: string): TargetName {
  const name = value.toLowerCase();
  if ((TARGETS as readonly string[]).includes(name)) return name as TargetName;
  throw new InputError({ field: '--target', message: `expected one of ${TARGETS.join(', ')}, found ${JSON.stringify(value)}` });
}

export function parseSize(value: string): SizeName {
  const name = value.toUpperCase();
  if ((SIZES as readonly string[]).includes(name)) return name as SizeName;
  throw new InputError({ field: '--size', message: `expected one of ${SIZES.join(', ')} (any case), found ${JSON.stringify(value)}` });
}

export function checkVersion(version: string): void {
  if (!PRODUCT_VERSION.test(version)) {
    throw new InputError({ field: '--version', message: `expected a semantic version like 5.2.0 or 5.2.0-rc.1, found ${JSON.stringify(version)}` });
  }
}

function checkRunId(runId: string): void {
  if (!RUN_ID.test(runId)) {
    throw new InputError({ field: 'run id', message: `expected 6-16 lowercase letters and digits starting with a letter, found ${JSON.stringify(runId)}` });
  }
}

function withFile<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof InputError) throw new InputError(err.issues.map((issue) => ({ file, ...issue })));
    throw err;
  }
}
