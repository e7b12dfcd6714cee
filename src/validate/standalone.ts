/**
 * `kiln validate`: what to validate (the succeeded builds of a manifest, or one image given by id
 * with the definition, size and version it was built from), then one validation per image in a run
 * of its own, so its instances are in a ledger like any build's.
 */
import { existsSync } from 'node:fs';
import { InputError } from '../core/errors.js';
import { loadDefinition } from '../definition/load.js';
import type { Plan } from '../definition/plan.js';
import { resolve } from '../definition/resolve.js';
import { BuildLog } from '../pipeline/build-log.js';
import { newRunId } from '../pipeline/run-id.js';
import { openRun } from '../pipeline/run.js';
import { readManifest } from '../release/manifest-schema.js';
import type { DriverOptions } from '../targets/drivers.js';
import { createDriver } from '../targets/drivers.js';
import type { Artifact } from '../targets/target.js';
import { validateImages, type ValidationReport } from './validate.js';

export interface ValidateRequest {
  /** A kiln-manifest.json, or an image id (local target: the root image file). */
  subject: string;
  target: string;
  size?: string;
  definition?: string;
  version?: string;
  dataDisk?: string;
  stateDir: string;
  drivers: DriverOptions;
  signal: AbortSignal;
  onLine: (line: string) => void;
}

export interface Subject {
  plan: Plan;
  images: Artifact[];
}

export interface ValidatedSubject extends Subject {
  report: ValidationReport;
}

export async function validateSubjects(request: ValidateRequest): Promise<{ runId: string; validated: ValidatedSubject[] }> {
  const runId = newRunId();
  const subjects = request.subject.endsWith('.json') ? await fromManifest(request, runId) : await fromImageId(request, runId);
  const { paths, ledger } = await openRun(runId, request.stateDir);
  const validated: ValidatedSubject[] = [];
  for (const subject of subjects) {
    const driver = await createDriver(subject.plan.target, request.drivers);
    const log = new BuildLog(paths.build(subject.plan.buildId).log, request.onLine);
    try {
      const report = await validateImages({ ...subject, driver, dataDisk: request.dataDisk, ledger, paths, log, signal: request.signal });
      validated.push({ ...subject, report });
    } finally {
      await log.close();
    }
  }
  return { runId, validated };
}

async function fromManifest(request: ValidateRequest, runId: string): Promise<Subject[]> {
  const manifest = await readManifest(request.subject);
  const builds = manifest.builds.filter((b) => b.status === 'succeeded' && b.target === request.target.toLowerCase() && (!request.size || b.size === request.size.toUpperCase()));
  if (builds.length === 0) {
    throw new InputError({ file: request.subject, field: 'builds', message: `no succeeded ${request.target}${request.size ? ` ${request.size}` : ''} build to validate` });
  }
  const loaded = await loadDefinition(request.definition ?? manifest.definition.path);
  return builds.map((build) => ({ plan: resolve(loaded, build.target, build.size, manifest.version, { runId }), images: build.artifacts }));
}

async function fromImageId(request: ValidateRequest, runId: string): Promise<Subject[]> {
  const missing = (['definition', 'size', 'version'] as const).filter((flag) => !request[flag]);
  if (missing.length > 0) {
    throw new InputError(missing.map((flag) => ({ field: `--${flag}`, message: `required when validating an image id (${request.subject}) rather than a manifest` })));
  }
  const loaded = await loadDefinition(request.definition ?? '');
  const plan = resolve(loaded, request.target, request.size ?? '', request.version ?? '', { runId });
  if (plan.target === 'local' && !existsSync(request.subject)) {
    throw new InputError({ field: '<image>', message: `the local target's image id is the root image file; ${request.subject} does not exist` });
  }
  const format = request.subject.split('.').pop() ?? '';
  return [{ plan, images: [{ kind: 'image', id: request.subject, disk: 'root', ...(plan.target === 'local' ? { path: request.subject, format } : {}) }] }];
}
