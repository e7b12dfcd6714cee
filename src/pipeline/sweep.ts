/**
 * Sweeping: finding and deleting what abandoned runs left behind, never touching a live run.
 * Two sources: the ledgers of runs started on this machine (their owner process is gone), and
 * resources in the clouds carrying kiln's tags (runs on machines that are gone, e.g. CI runners).
 * A run is live when its owner process runs on this host, or when it is younger than the age limit
 * (a run on another machine cannot be asked, so age is the guard there).
 */
import { readdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { KilnError } from '../core/errors.js';
import { isProcessAlive } from '../core/process-alive.js';
import type { TargetName } from '../definition/schema.js';
import type { TaggedResource, TargetDriver } from '../targets/target.js';
import { readJsonIfExists } from './durable-file.js';
import { Ledger, type LedgerEntry } from './ledger.js';
import type { RunOwner } from './run.js';
import { runPaths } from './state-dir.js';
import { describeEntry, undo } from './undo.js';

export interface SweepOptions {
  stateDir: string;
  olderThanMs: number;
  /** Targets whose clouds are searched by tag (and whose ledger entries are swept). */
  targets: TargetName[];
  driverFor: (target: TargetName) => TargetDriver;
  /** false: only report what would be deleted. */
  act: boolean;
  log: (line: string) => void;
  now?: number;
  signal?: AbortSignal;
}

export interface SweepReport {
  liveRuns: string[];
  abandonedRuns: string[];
  deleted: string[];
  wouldDelete: string[];
  failed: string[];
  /** Targets not searched, with why (e.g. no credentials or region configured). */
  skipped: string[];
}

export async function sweep(options: SweepOptions): Promise<SweepReport> {
  const now = options.now ?? Date.now();
  const report: SweepReport = { liveRuns: [], abandonedRuns: [], deleted: [], wouldDelete: [], failed: [], skipped: [] };
  const localRuns = await runIdsIn(options.stateDir);
  const live = new Set<string>();
  for (const runId of localRuns) {
    const owner = await readJsonIfExists<RunOwner>(runPaths(runId, options.stateDir).owner);
    const old = owner ? now - Date.parse(owner.startedAt) > options.olderThanMs : true;
    if ((owner && ownerIsAlive(owner)) || !old) live.add(runId);
  }
  report.liveRuns = [...live].sort();

  // 1. Ledgers of abandoned local runs.
  for (const runId of localRuns.filter((r) => !live.has(r))) {
    const ledger = await Ledger.open(runPaths(runId, options.stateDir).ledger, runId);
    const entries = ledger.entries().filter((e) => options.targets.includes(e.target));
    if (entries.length === 0) continue;
    report.abandonedRuns.push(runId);
    if (!options.act) {
      report.wouldDelete.push(...entries.map(describeEntry));
      continue;
    }
    const left = await undo(ledger, (e) => options.driverFor(e.target), { log: options.log });
    report.deleted.push(...entries.filter((e) => !left.some((l) => l.seq === e.seq)).map(describeEntry));
    report.failed.push(...left.map(describeEntry));
  }

  // 2. Tagged resources in the clouds, of runs that are neither live here nor young.
  for (const target of options.targets) {
    const driver = options.driverFor(target);
    if (!driver.listTagged) continue;
    let found: TaggedResource[];
    try {
      found = await driver.listTagged({ signal: options.signal ?? new AbortController().signal });
    } catch (err) {
      // A cloud this machine is not set up for is not an error of the sweep: say so and go on.
      if (!(err instanceof KilnError && err.code === 'INPUT')) throw err;
      report.skipped.push(`${target}: ${err.message}`);
      continue;
    }
    const abandoned = found.filter((r) => !live.has(r.runId) && (!r.createdAt || now - Date.parse(r.createdAt) > options.olderThanMs));
    for (const resource of abandoned.sort(deleteOrder)) {
      const entry = asEntry(resource);
      if (!report.abandonedRuns.includes(resource.runId)) report.abandonedRuns.push(resource.runId);
      if (!options.act) {
        report.wouldDelete.push(describeEntry(entry));
        continue;
      }
      try {
        await driver.destroy(entry, { log: options.log, signal: options.signal ?? AbortSignal.timeout(30 * 60_000) });
        report.deleted.push(describeEntry(entry));
      } catch (err) {
        options.log(`sweep: could not delete ${describeEntry(entry)}: ${(err as Error).message}`);
        report.failed.push(describeEntry(entry));
      }
    }
  }
  return report;
}

/** Instances before what they use (disks, groups, keys), images last: the reverse of creation. */
const KIND_ORDER = ['instance', 'vm', 'virtual-machine', 'network-interface', 'public-ip', 'disk', 'volume', 'security-group', 'network-security-group', 'firewall', 'virtual-network', 'key-pair', 'resource-group', 'image', 'image-copy', 'gallery-image-version', 'snapshot'];
function deleteOrder(a: TaggedResource, b: TaggedResource): number {
  const rank = (kind: string) => (KIND_ORDER.includes(kind) ? KIND_ORDER.indexOf(kind) : KIND_ORDER.length);
  return rank(a.kind) - rank(b.kind);
}

function asEntry(resource: TaggedResource): LedgerEntry {
  return { ...resource, seq: 0, role: 'temporary', createdAt: resource.createdAt ?? '' };
}

function ownerIsAlive(owner: RunOwner): boolean {
  return owner.host === hostname() && isProcessAlive(owner.pid);
}

async function runIdsIn(stateDir: string): Promise<string[]> {
  try {
    return (await readdir(join(stateDir, 'runs'), { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  } catch {
    return [];
  }
}
