/**
 * kiln stopped at any point of a build leaves nothing behind, on the GCE, EC2 and ARM fakes (real
 * SDKs over HTTP, machines backed by a loopback sshd) and on the local target (a real QEMU on a
 * blank base image, so its guest never boots, a loopback sshd standing in for the guest's SSH, and
 * real overlays, seed, QMP and image files; see local-world.ts):
 *
 * - SIGKILL at every step boundary (each step's start, and after the last step: images made and
 *   shared, temporaries not yet deleted), then `kiln cleanup`: a fresh driver, given only the ledger
 *   file the dead process left, undoes it. The child freezes right after printing the boundary's
 *   line (see child.ts), so the kill lands exactly there, whatever the machine's speed.
 * - SIGKILL in the middle of create calls (the clouds): the fake, on receiving the call, kills the
 *   child and only then serves it, so the resource exists and the ledger holds only its intent. On
 *   GCE the call's operation is also held until cleanup's first request: a delete by name that does
 *   not wait for operations in flight on the name would find nothing, and the insert would then leak.
 * - SIGINT at the same points, and no cleanup command: kiln undoes by itself (with a deadline of
 *   its own) and exits 130.
 *
 * Each case then finds nothing in the fake, nothing in the ledger and no local file but the run's
 * records (ledger, logs, state, manifest). On local, nothing in the output dir and no QEMU of the
 * run alive, looked for by the pids kiln recorded (ledger, build log) and by every QEMU command line
 * naming the run; after a SIGKILL, any QEMU of the run still alive must be in the ledger (QEMU does
 * not die with kiln: nothing ties it to kiln's life, so cleanup kills it by its recorded pid).
 * Each test runs its case on every target at once (every case checks its whole fake is empty, so a
 * fake holds one case at a time).
 */
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STEP_ORDER } from '../../../src/pipeline/build.js';
import { Ledger } from '../../../src/pipeline/ledger.js';
import { runPaths } from '../../../src/pipeline/state-dir.js';
import { undo } from '../../../src/pipeline/undo.js';
import type { ChildConfig, LeakTarget } from './child.js';
import { ChildPool, type Child } from './children.js';
import { PUBLISH_REGIONS } from '../aws/world.js';
import { isQemuNaming, loggedQemuPids, qemuNaming } from './local-world.js';
import { EMPTY, startWorlds, type LeakWorld } from './worlds.js';

const BOUNDARIES = [...STEP_ORDER.map((step) => `step ${step} started`), 'step publish done'];
const TARGETS: LeakTarget[] = ['gcp', 'aws', 'azure', 'local'];
/** From this boundary on, a build has started its VM (on local: a QEMU process). */
const LAUNCHED = BOUNDARIES.indexOf('step connect started');
/** The create calls to stop kiln in, as [API call, which one of the build's calls of it]. */
const CREATES: Record<LeakTarget, Array<[string, number]>> = {
  // The images are inserted one after the other: root, then data.
  gcp: [['firewalls.insert', 1], ['instances.insert', 1], ['images.insert', 1], ['images.insert', 2]],
  // The copies go out at once: the last one to arrive is the one stopped in, the others arrived before it.
  aws: [['ImportKeyPair', 1], ['CreateSecurityGroup', 1], ['RunInstances', 1], ['CreateImage', 1], ['CopyImage', PUBLISH_REGIONS.length]],
  // Long-running creates: the VM (with its disks), the managed image, the replicated gallery version.
  azure: [['virtualMachines.createOrUpdate', 1], ['images.createOrUpdate', 1], ['galleryImageVersions.createOrUpdate', 1]],
  // No fake to stop kiln in: its creates are qemu-img and QEMU on this machine.
  local: [],
};

let worlds: Record<LeakTarget, LeakWorld>;
let closeWorlds: () => Promise<void>;
const children = Object.fromEntries(TARGETS.map((t) => [t, new ChildPool(t, BOUNDARIES.length + CREATES[t].length)])) as Record<LeakTarget, ChildPool>;

beforeAll(async () => {
  const first = TARGETS.map((t) => children[t].warm());
  ({ worlds, close: closeWorlds } = await startWorlds());
  // Loading three SDKs at once (plus the fakes') is the slowest moment of the file.
  await Promise.all(first.map((c) => c.until('ready')));
}, 300_000);
afterAll(async () => {
  for (const t of TARGETS) children[t].stop();
  await closeWorlds?.();
});

let runs = 0;
function newRun(t: LeakTarget): Pick<ChildConfig, 'runId' | 'version'> {
  const n = ++runs;
  return { runId: `rleak${t.slice(0, 2)}${String(n).padStart(3, '0')}`, version: `5.2.${n}` };
}

/** Anything under the run's directory but directories and its records (ledger, owner, manifest, per build: state, log, console). */
async function strayFiles(stateDir: string, runId: string): Promise<string[]> {
  const root = runPaths(runId, stateDir).root;
  const records = /^(ledger\.json|owner\.json|kiln-manifest\.json|builds\/[^/]+\/(state\.json|build\.log|console\.log))$/;
  const files = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return files.filter((f) => !f.isDirectory()).map((f) => relative(root, join(f.parentPath, f.name))).filter((f) => !records.test(f));
}

/** What a case knows of the run when it checks: did the build get as far as its VM, which QEMU pids did the ledger hold. */
interface RunFacts {
  launched: boolean;
  ledgerPids?: number[];
}

async function expectNothingLeft(w: LeakWorld, runId: string, when: string, ledgerHeld: string[], facts: RunFacts): Promise<void> {
  const ledger = await Ledger.open(runPaths(runId, w.stateDir).ledger, runId);
  expect(ledger.entries(), `ledger after ${when}`).toEqual([]);
  expect(await w.left(), `left in the ${w.target} fake after ${when} (ledger held ${ledgerHeld.join(', ')})`).toEqual(EMPTY[w.target]);
  expect(await strayFiles(w.stateDir, runId), `local files after ${when}`).toEqual([]);
  if (w.target === 'local') await expectNoQemuOf(w, runId, when, facts);
}

/** No QEMU of the run alive: by the pids kiln recorded, and among all processes by its command line. */
async function expectNoQemuOf(w: LeakWorld, runId: string, when: string, facts: RunFacts): Promise<void> {
  const recorded = [...new Set([...(facts.ledgerPids ?? []), ...(await loggedQemuPids(w.stateDir, runId))])];
  if (facts.launched) expect(recorded, `QEMU pids kiln recorded before ${when}`).not.toEqual([]);
  for (const pid of recorded) expect(await isQemuNaming(pid, runId), `QEMU ${pid} of ${runId} alive after ${when}`).toBe(false);
  expect(await qemuNaming(runId), `QEMU processes naming ${runId} after ${when}`).toEqual([]);
}

/** `kiln cleanup` in another process: the ledger file and a driver that knows nothing else. */
async function cleanUpAfter(w: LeakWorld, runId: string, when: string, launched: boolean): Promise<string[]> {
  const ledger = await Ledger.open(runPaths(runId, w.stateDir).ledger, runId);
  const held = ledger.entries().map((e) => `${e.kind}${e.id ? '' : ' (intent)'}`);
  const ledgerPids = ledger.entries().flatMap((e) => (e.kind === 'vm' && e.id ? [Number(e.id)] : []));
  if (w.target === 'local') {
    // A QEMU that outlived kiln is fine as long as the ledger names it: cleanup kills it by that pid.
    const unrecorded = (await qemuNaming(runId)).filter((pid) => !ledgerPids.includes(pid));
    expect(unrecorded, `QEMU of ${runId} alive after ${when} but not in the ledger`).toEqual([]);
  }
  const fresh = await w.fresh();
  const lines: string[] = [];
  const left = await undo(ledger, () => fresh, { log: (l) => lines.push(l), timeoutMs: 60_000 });
  expect(left, lines.join('\n')).toEqual([]);
  await expectNothingLeft(w, runId, when, held, { launched, ledgerPids });
  return held;
}

interface Case {
  name: string;
  target: LeakTarget;
  run: (w: LeakWorld) => Promise<void>;
}

function sigkillAt(target: LeakTarget, boundary: string): Case {
  return {
    target,
    name: `${target}: SIGKILL at "${boundary}", then cleanup from the ledger alone`,
    run: async (w) => {
      const { runId, version } = newRun(target);
      const child = children[target].take('kill');
      try {
        await child.until('ready');
        child.send({ ...w.config(), runId, version, stopAt: boundary });
        await child.until(`${runId} ${boundary}`);
        child.process.kill('SIGKILL');
        expect(child.lines().at(-1)).toBe(`${runId} ${boundary}`);
      } finally {
        child.process.kill('SIGKILL');
      }
      expect((await child.exited)[1]).toBe('SIGKILL');
      const held = await cleanUpAfter(w, runId, `SIGKILL at "${boundary}"`, BOUNDARIES.indexOf(boundary) >= LAUNCHED);
      if (boundary !== 'step prepare started') expect(held.length).toBeGreaterThan(0);
    },
  };
}

function sigkillIn(target: LeakTarget, action: string, nth: number): Case {
  return {
    target,
    name: `${target}: SIGKILL in ${action} (call ${nth}), then cleanup finds what has only an intent`,
    run: async (w) => {
      const { runId, version } = newRun(target);
      const child = children[target].take('kill');
      let killed = false;
      const remove = w.intercept(action, runId, nth, async () => {
        child.process.kill('SIGKILL');
        killed = true;
        await child.exited;
      });
      try {
        await child.until('ready');
        child.send({ ...w.config(), runId, version });
        await child.until(new RegExp(`^${runId} result `)).catch((err: Error) => {
          if (!killed) throw err;
        });
      } finally {
        remove();
        child.process.kill('SIGKILL');
      }
      expect(killed, `the child was not killed in ${action} ${nth}`).toBe(true);
      expect((await child.exited)[1]).toBe('SIGKILL');
      const held = await cleanUpAfter(w, runId, `SIGKILL in ${action} ${nth}`, false);
      expect(held.at(-1)).toMatch(/ \(intent\)$/);
    },
  };
}

/** The interrupted run's lines: it said so, undid, and ended interrupted with exit code 130. */
async function expectUndoneByItself(w: LeakWorld, child: Child, runId: string, when: string, launched: boolean): Promise<void> {
  const result = await child.until(new RegExp(`^${runId} result `));
  const lines = child.lines().filter((l) => l.startsWith(`${runId} `));
  const printed = `it printed:\n${lines.join('\n')}`;
  expect(lines, printed).toContain(`${runId} interrupted`);
  expect(lines, printed).toContain(`${runId} cleanup`);
  expect(result, printed).toBe(`${runId} result interrupted exit 130`);
  await expectNothingLeft(w, runId, when, [], { launched });
}

function sigintAt(target: LeakTarget, boundary: string): Case {
  return {
    target,
    name: `${target}: SIGINT at "${boundary}": kiln undoes by itself`,
    run: async (w) => {
      const { runId, version } = newRun(target);
      const child = children[target].take('interrupt');
      await child.until('ready');
      child.send({ ...w.config(), runId, version, stopAt: boundary });
      await expectUndoneByItself(w, child, runId, `SIGINT at "${boundary}"`, BOUNDARIES.indexOf(boundary) >= LAUNCHED);
    },
  };
}

function sigintIn(target: LeakTarget, action: string, nth: number): Case {
  return {
    target,
    name: `${target}: SIGINT in ${action} (call ${nth}): kiln undoes by itself`,
    run: async (w) => {
      const { runId, version } = newRun(target);
      const child = children[target].take('interrupt');
      let sent = false;
      // The call is served only once kiln has taken the interrupt: its answer comes too late.
      const remove = w.intercept(action, runId, nth, async () => {
        child.process.kill('SIGINT');
        sent = true;
        await child.until(`${runId} interrupted`);
      });
      try {
        await child.until('ready');
        child.send({ ...w.config(), runId, version });
        await expectUndoneByItself(w, child, runId, `SIGINT in ${action} ${nth}`, false);
      } finally {
        remove();
      }
      expect(sent, `no SIGINT was sent in ${action} ${nth}`).toBe(true);
    },
  };
}

/** Runs one case on every target at once; fails naming each target that failed. */
async function onEveryTarget(cases: Array<Case | undefined>): Promise<void> {
  const present = cases.filter((c): c is Case => c !== undefined);
  const outcomes = await Promise.allSettled(present.map((c) => c.run(worlds[c.target])));
  const failures = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [`${present[i]?.name}:\n${(o.reason as Error)?.stack ?? String(o.reason)}`] : []));
  if (failures.length > 0) throw new Error(failures.join('\n\n'));
}

const createRounds = Array.from({ length: Math.max(...TARGETS.map((t) => CREATES[t].length)) }, (_, i) => ({
  i,
  calls: TARGETS.flatMap((t) => (CREATES[t][i] ? [`${t} ${CREATES[t][i]?.[0]} #${CREATES[t][i]?.[1]}`] : [])).join(', '),
}));
const createCase = (make: (t: LeakTarget, action: string, nth: number) => Case, i: number) =>
  TARGETS.map((t) => {
    const call = CREATES[t][i];
    return call ? make(t, call[0], call[1]) : undefined;
  });

// A case waits for its children to load a cloud SDK, seconds each, on a machine that may be busy.
const CASE_TIMEOUT_MS = 180_000;

describe('kiln killed with SIGKILL, then `kiln cleanup` from the ledger alone, leaves nothing (GCE, EC2, ARM, local QEMU)', { timeout: CASE_TIMEOUT_MS }, () => {
  it.each(BOUNDARIES)('at "%s"', (boundary) => onEveryTarget(TARGETS.map((t) => sigkillAt(t, boundary))));
  it.each(createRounds)('inside a create call: $calls', ({ i }) => onEveryTarget(createCase(sigkillIn, i)));
});

describe('kiln interrupted with SIGINT undoes by itself, exits 130 and leaves nothing (GCE, EC2, ARM, local QEMU)', { timeout: CASE_TIMEOUT_MS }, () => {
  it.each(BOUNDARIES)('at "%s"', (boundary) => onEveryTarget(TARGETS.map((t) => sigintAt(t, boundary))));
  it.each(createRounds)('inside a create call: $calls', ({ i }) => onEveryTarget(createCase(sigintIn, i)));
});
