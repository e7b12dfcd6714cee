import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDefinition } from '../../../src/definition/load.js';
import type { PipelineStepName, Plan } from '../../../src/definition/plan.js';
import { resolve } from '../../../src/definition/resolve.js';
import { runBuild, STEP_ORDER, type BuildOptions } from '../../../src/pipeline/build.js';
import { Ledger } from '../../../src/pipeline/ledger.js';
import { runPaths } from '../../../src/pipeline/state-dir.js';
import { undo } from '../../../src/pipeline/undo.js';
import { generateKeyPair } from '../../../src/ssh/index.js';
import { ScriptedDriver, type Misbehaviour } from '../../support/scripted-driver.js';
import { loginFor, startSshd, type TestSshd } from '../../support/sshd.js';

let sshd: TestSshd;
const key = generateKeyPair('pipeline-test');
let plan: Plan;
let stateDir: string;

beforeAll(async () => {
  sshd = await startSshd({ authorizedKeys: [key.publicKey] });
  const loaded = await loadDefinition('images/gitea.yaml');
  // No provisioning scripts here: they must never run on this host. The VM tests run them.
  plan = { ...resolve(loaded, 'local', 'S', '1.22.0', { runId: 'rpipe0001' }), provision: [] };
});
afterAll(async () => sshd.dispose());
beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'kiln-pipeline-'));
  return () => rm(stateDir, { recursive: true, force: true });
});

async function build(misbehave: Partial<Record<PipelineStepName, Misbehaviour>> = {}, extra: Partial<BuildOptions> = {}) {
  const driver = new ScriptedDriver({ ...loginFor(sshd), privateKey: key.privateKey }, misbehave);
  const paths = runPaths(plan.runId, stateDir);
  const ledger = await Ledger.open(paths.ledger, plan.runId);
  const result = await runBuild({ plan, driver, ledger, paths, onError: 'cleanup', signal: new AbortController().signal, ...extra });
  return { driver, ledger, result, paths };
}

describe('a build', () => {
  it('runs every step, keeps the artifacts and deletes the temporaries in reverse order', async () => {
    const { driver, ledger, result, paths } = await build();
    expect(result.status).toBe('succeeded');
    expect(driver.calls).toEqual(['prepare', 'launch', 'connect', 'stop', 'capture', 'publish']);
    expect(driver.destroyed).toEqual(['instance-3', 'security-group-2', 'key-pair-1']);
    expect([...driver.live.keys()]).toEqual(['image-4', 'image-copy-5']);
    expect(result.artifacts.map((a) => a.id)).toEqual(['image-4', 'image-copy-5']);
    expect(ledger.entries()).toEqual([]);
    expect(Object.keys(result.timingsMs)).toEqual([...STEP_ORDER]);
    expect(result.sourceImage).toBe('base-1');
    const onDisk = JSON.parse(await readFile(paths.ledger, 'utf8'));
    expect(onDisk.entries).toEqual([]);
    expect(await readFile(paths.build(plan.buildId).log, 'utf8')).toContain(`build ${plan.buildId}`);
  });

  it.each(['prepare', 'launch', 'connect', 'stop', 'capture', 'publish'] as const)('failing in %s leaves nothing behind', async (step) => {
    const { driver, ledger, result } = await build({ [step]: 'fail' });
    expect(result.status).toBe('failed');
    expect(result.failedStep).toBe(step);
    expect(result.error?.message).toContain(`${step} failed on purpose`);
    expect([...driver.live.keys()]).toEqual([]);
    expect(ledger.entries()).toEqual([]);
    expect(result.leftovers).toEqual([]);
  });

  it('is undone when interrupted, with a cleanup deadline of its own', async () => {
    const controller = new AbortController();
    const driver = new ScriptedDriver({ ...loginFor(sshd), privateKey: key.privateKey }, { launch: 'hang' });
    const paths = runPaths(plan.runId, stateDir);
    const ledger = await Ledger.open(paths.ledger, plan.runId);
    const running = runBuild({
      plan, driver, ledger, paths, onError: 'cleanup', signal: controller.signal,
      onProgress: (e) => e.type === 'step' && e.step === 'launch' && e.status === 'started' && setImmediate(() => controller.abort()),
    });
    const result = await running;
    expect(result.status).toBe('interrupted');
    expect(result.error?.code).toBe('INTERRUPTED');
    expect([...driver.live.keys()]).toEqual([]);
  });

  it('times out a step that ignores its deadline, and still deletes what it created late', async () => {
    const { driver, result } = await build({ capture: 'ignore-signal-then-create' }, { stepTimeoutsMs: { capture: 200 } });
    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('TIMEOUT');
    expect(result.error?.message).toBe('step capture did not finish within 200ms');
    expect(driver.destroyed).toContain('late-resource-5');
    expect([...driver.live.keys()]).toEqual([]);
  });

  it('keeps everything with on-error abort, for kiln cleanup to delete later', async () => {
    const { driver, ledger, result } = await build({ capture: 'fail' }, { onError: 'abort' });
    expect(result.status).toBe('failed');
    expect(result.leftovers.map((e) => e.kind)).toEqual(['key-pair', 'security-group', 'instance', 'image']);
    expect(driver.live.size).toBe(4);
    const left = await undo(ledger, () => driver, { log: () => {} });
    expect(left).toEqual([]);
    expect(driver.live.size).toBe(0);
  });

  it('resumes from the failed step without launching again', async () => {
    const first = await build({ capture: 'fail' }, { onError: 'abort' });
    expect(first.result.status).toBe('failed');
    const driver = new ScriptedDriver({ ...loginFor(sshd), privateKey: key.privateKey });
    for (const [id, kind] of first.driver.live) driver.live.set(id, kind);
    const ledger = await Ledger.open(first.paths.ledger, plan.runId);
    const result = await runBuild({ plan, driver, ledger, paths: first.paths, onError: 'cleanup', signal: new AbortController().signal, resume: true });
    expect(result.status).toBe('succeeded');
    expect(driver.calls).toEqual(['capture', 'publish']);
    expect([...driver.live.values()].sort()).toEqual(['image', 'image', 'image-copy']);
    expect(ledger.entries()).toEqual([]);
  });

  it('with validate, never publishes an image it could not validate, and leaves nothing behind', async () => {
    // The scripted driver cannot launch instances, like a target without validation support.
    const { driver, ledger, result } = await build({}, { validate: true });
    expect(result.status).toBe('failed');
    expect(result.failedStep).toBe('validate');
    expect(result.error?.message).toMatch(/validation is not supported on the local target yet/);
    expect(driver.calls).toEqual(['prepare', 'launch', 'connect', 'stop', 'capture']);
    expect([...driver.live.keys()]).toEqual([]);
    expect(ledger.entries()).toEqual([]);
  });
});
