/**
 * A run of several builds through the real pipeline (scripted drivers, a real sshd): a failing build
 * does not stop the others; --fail-fast interrupts the running ones and starts no more; builds that
 * never started are reported, never left pending; plain progress lines, the summary table and the
 * manifest say the same.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createProgress } from '../../../src/cli/progress.js';
import type { Output } from '../../../src/cli/output.js';
import { printSummary } from '../../../src/cli/summary.js';
import { loadDefinition } from '../../../src/definition/load.js';
import type { PipelineStepName, Plan } from '../../../src/definition/plan.js';
import { buildMatrix } from '../../../src/pipeline/matrix.js';
import { runBuilds, type RunOptions } from '../../../src/pipeline/run.js';
import { readManifest } from '../../../src/release/manifest-schema.js';
import { generateKeyPair } from '../../../src/ssh/index.js';
import { ScriptedDriver, type Misbehaviour } from '../../support/scripted-driver.js';
import { loginFor, startSshd, type TestSshd } from '../../support/sshd.js';

let sshd: TestSshd;
const key = generateKeyPair('run-test');
let stateDir: string;
let runNumber = 0;

beforeAll(async () => {
  sshd = await startSshd({ authorizedKeys: [key.publicKey] });
});
afterAll(async () => sshd.dispose());
beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'kiln-run-'));
  return () => rm(stateDir, { recursive: true, force: true });
});

/** Three local builds (XS, S, M, nothing to provision) of a fresh run. */
async function threePlans(): Promise<Plan[]> {
  const loaded = await loadDefinition('images/sourcegraph.yaml');
  const runId = `rrun${String(++runNumber).padStart(4, '0')}`;
  return buildMatrix(loaded, { targets: 'local', sizes: 'xs,s,m', version: '5.2.0' }, { runId }).map((p) => ({ ...p, provision: [] }));
}

function recordingOutput(): Output & { lines: string[] } {
  const lines: string[] = [];
  return { interactive: false, lines, line: (text = '') => lines.push(text), error: (text) => lines.push(text), bold: (t) => t, dim: (t) => t };
}

async function run(plans: Plan[], misbehave: Record<string, Partial<Record<PipelineStepName, Misbehaviour>>>, extra: Partial<RunOptions> = {}) {
  const drivers = new Map(plans.map((p) => [p.buildId, new ScriptedDriver({ ...loginFor(sshd), privateKey: key.privateKey }, misbehave[p.size] ?? {})]));
  const out = recordingOutput();
  const progress = createProgress(plans.map((p) => p.buildId), out, false);
  const manifestPath = join(stateDir, 'kiln-manifest.json');
  const result = await runBuilds({
    plans,
    driverFor: (plan) => drivers.get(plan.buildId) as ScriptedDriver,
    stateDir,
    onError: 'cleanup',
    signal: new AbortController().signal,
    concurrency: 3,
    manifestPath,
    onProgress: (e) => progress.event(e),
    onBuildDone: (r) => progress.buildDone(r),
    ...extra,
  });
  await progress.finish();
  printSummary(result, manifestPath, out);
  return { result, drivers, out, manifest: await readManifest(manifestPath) };
}

describe('a run of several builds', () => {
  it('goes on with the others when one fails, and says so in progress lines, the summary and the manifest', async () => {
    const plans = await threePlans();
    const [xs, s, m] = plans.map((p) => p.buildId) as [string, string, string];
    const { result, drivers, out, manifest } = await run(plans, { S: { launch: 'fail' } });
    expect(result.results.map((r) => [r.buildId, r.status])).toEqual([
      [xs, 'succeeded'],
      [s, 'failed'],
      [m, 'succeeded'],
    ]);
    for (const driver of drivers.values()) expect([...driver.live.values()].filter((kind) => !kind.startsWith('image'))).toEqual([]);
    expect(manifest.builds.map((b) => [b.buildId, b.status, b.error?.step])).toEqual([
      [xs, 'succeeded', undefined],
      [s, 'failed', 'launch'],
      [m, 'succeeded', undefined],
    ]);
    // Plain lines, each prefixed with its build.
    expect(out.lines).toContain(`[${s}] launch`);
    expect(out.lines).toContain(`[${s}] failed: launch failed on purpose`);
    expect(out.lines).toContain(`[${m}] succeeded`);
    // The summary: a header, a row per build, the totals.
    expect(out.lines.some((l) => /^build +status +time +artifacts \/ error$/.test(l))).toBe(true);
    expect(out.lines.find((l) => l.startsWith(`${s} `))).toMatch(new RegExp(`^${s} +failed +\\S+ +launch failed on purpose$`));
    expect(out.lines.find((l) => l.startsWith(`${xs} `))).toMatch(new RegExp(`^${xs} +succeeded +\\S+ +image-\\d+ elsewhere:image-copy-\\d+$`));
    expect(out.lines).toContainEqual(expect.stringMatching(/^3 builds: 2 succeeded, 1 failed; the run took \S+, its slowest build \S+$/));
  });

  it('with fail-fast, interrupts the running builds, starts no more, and reports those it never started', async () => {
    const plans = await threePlans();
    const [xs, s, m] = plans.map((p) => p.buildId) as [string, string, string];
    const { result, drivers, manifest } = await run(plans, { XS: { prepare: 'fail' }, S: { launch: 'hang' } }, { failFast: true, concurrency: 2 });
    expect(result.results.map((r) => [r.buildId, r.status, r.error?.message])).toEqual([
      [xs, 'failed', 'prepare failed on purpose'],
      [s, 'interrupted', expect.stringMatching(/^build interrupted during (prepare|launch)$/)],
      [m, 'interrupted', `not started: --fail-fast: ${xs} failed`],
    ]);
    expect(drivers.get(m)?.calls).toEqual([]);
    for (const driver of drivers.values()) expect(driver.live.size).toBe(0);
    expect(manifest.builds.map((b) => [b.buildId, b.status])).toEqual([
      [xs, 'failed'],
      [s, 'interrupted'],
      [m, 'interrupted'],
    ]);
    expect(manifest.builds[2]?.error).toEqual({ code: 'INTERRUPTED', message: `not started: --fail-fast: ${xs} failed` });
  });

  it('without fail-fast, the same failure stops nothing', async () => {
    const plans = await threePlans();
    const { result } = await run(plans, { XS: { prepare: 'fail' } }, { concurrency: 1 });
    expect(result.results.map((r) => r.status)).toEqual(['failed', 'succeeded', 'succeeded']);
  });

  it('reports every build as not started when the run is interrupted before any starts', async () => {
    const plans = await threePlans();
    const controller = new AbortController();
    controller.abort();
    const { result, manifest, drivers } = await run(plans, {}, { signal: controller.signal });
    expect(result.results.map((r) => [r.status, r.error?.message])).toEqual(plans.map(() => ['interrupted', 'not started: the run was interrupted']));
    expect(manifest.builds.every((b) => b.status === 'interrupted' && b.startedAt === undefined)).toBe(true);
    for (const driver of drivers.values()) expect(driver.calls).toEqual([]);
  });
});
