import { describe, expect, it, beforeEach } from 'vitest';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeJsonDurably } from '../../../src/pipeline/durable-file.js';
import { Ledger, type LedgerEntry } from '../../../src/pipeline/ledger.js';
import { runPaths } from '../../../src/pipeline/state-dir.js';
import { sweep } from '../../../src/pipeline/sweep.js';
import { LocalDriver } from '../../../src/targets/local/driver.js';
import type { TaggedResource, TargetDriver } from '../../../src/targets/target.js';

const HOUR = 3_600_000;
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-sweep-'));
  return () => rm(dir, { recursive: true, force: true });
});

/** A run on this machine whose ledger lists one local file; its owner is alive or not. */
async function localRun(runId: string, pid: number, ageMs: number): Promise<string> {
  const paths = runPaths(runId, join(dir, 'state'));
  await writeJsonDurably(paths.owner, { pid, host: hostname(), startedAt: new Date(Date.now() - ageMs).toISOString() });
  const file = join(dir, `${runId}.qcow2`);
  await writeFile(file, 'disk');
  const ledger = await Ledger.open(paths.ledger, runId);
  await ledger.intend({ build: `${runId}-local-xs`, target: 'local', kind: 'file', name: file, id: file, role: 'temporary' });
  return file;
}

async function deadPid(): Promise<number> {
  const child = execa('true');
  await child;
  return child.pid!;
}

/** A cloud holding kiln-tagged resources of several runs. */
class TaggedCloud implements Partial<TargetDriver> {
  readonly live: TaggedResource[];
  constructor(resources: TaggedResource[]) {
    this.live = [...resources];
  }
  async listTagged(): Promise<TaggedResource[]> {
    return [...this.live];
  }
  async destroy(entry: LedgerEntry): Promise<void> {
    const i = this.live.findIndex((r) => r.id === entry.id);
    if (i >= 0) this.live.splice(i, 1);
  }
}

const tagged = (runId: string, kind: string, ageMs: number): TaggedResource => ({
  runId, kind, id: `${kind}-${runId}`, name: `kiln-${runId}-${kind}`, build: `${runId}-aws-xs`, target: 'aws', region: 'us-west-2',
  createdAt: new Date(Date.now() - ageMs).toISOString(),
});

describe('kiln cleanup --sweep', () => {
  it('deletes what an abandoned run left and leaves a live run alone', async () => {
    const liveFile = await localRun('rlive0001', process.pid, 10 * HOUR);
    const deadFile = await localRun('rdead0001', await deadPid(), 10 * HOUR);
    const youngFile = await localRun('ryoung001', await deadPid(), 0.5 * HOUR);
    const cloud = new TaggedCloud([
      tagged('rlive0001', 'instance', 10 * HOUR), // the live local run's cloud side
      tagged('rlost0001', 'instance', 10 * HOUR), // a lost CI runner's
      tagged('rlost0001', 'security-group', 10 * HOUR),
      tagged('rnew00001', 'instance', 0.2 * HOUR), // another machine's run, too young to judge
    ]);
    const local = new LocalDriver();
    const report = await sweep({
      stateDir: join(dir, 'state'), olderThanMs: 6 * HOUR, targets: ['local', 'aws'], act: true, log: () => {},
      driverFor: (target) => (target === 'aws' ? (cloud as unknown as TargetDriver) : local),
    });
    expect(existsSync(liveFile)).toBe(true);
    expect(existsSync(youngFile)).toBe(true);
    expect(existsSync(deadFile)).toBe(false);
    expect(cloud.live.map((r) => r.id).sort()).toEqual(['instance-rlive0001', 'instance-rnew00001']);
    expect(report.liveRuns).toEqual(['rlive0001', 'ryoung001']);
    expect(report.abandonedRuns.sort()).toEqual(['rdead0001', 'rlost0001']);
    // The instance goes before the security group it uses.
    expect(report.deleted.filter((d) => d.startsWith('aws'))).toEqual(['aws instance instance-rlost0001 in us-west-2', 'aws security-group security-group-rlost0001 in us-west-2']);
    const ledger = await Ledger.open(runPaths('rdead0001', join(dir, 'state')).ledger, 'rdead0001');
    expect(ledger.entries()).toEqual([]);
  });

  it('only lists without --yes, and is idempotent', async () => {
    const deadFile = await localRun('rdead0002', await deadPid(), 10 * HOUR);
    const options = { stateDir: join(dir, 'state'), olderThanMs: 6 * HOUR, targets: ['local' as const], log: () => {}, driverFor: () => new LocalDriver() };
    const dry = await sweep({ ...options, act: false });
    expect(dry.wouldDelete).toEqual([`local file ${deadFile}`]);
    expect(existsSync(deadFile)).toBe(true);
    await sweep({ ...options, act: true });
    const again = await sweep({ ...options, act: true });
    expect(existsSync(deadFile)).toBe(false);
    expect(again.deleted).toEqual([]);
    expect(again.wouldDelete).toEqual([]);
  });
});
