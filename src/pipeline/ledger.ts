/**
 * The ledger: the durable record of every resource a run created and has not yet deleted. An entry
 * is written as an *intent* before the create call (with the name or client token that finds the
 * resource even if kiln dies before the call returns) and completed with the id after it. Entries
 * leave the ledger when the resource is deleted, or when a finished build releases its artifacts.
 * Every change is on disk (atomic write + fsync) before kiln goes on.
 */
import type { TargetName } from '../definition/schema.js';
import { GroupCommit, readJsonIfExists, removeStaleTemps, writeJsonDurably } from './durable-file.js';

export const LEDGER_FORMAT = 1;

/** temporary: deleted when the build ends; artifact: kept when the build succeeds. */
export type ResourceRole = 'temporary' | 'artifact';

export interface ResourceLocation {
  region?: string;
  zone?: string;
  /** Azure resource group, or the project on GCE. */
  group?: string;
}

export interface LedgerEntry extends ResourceLocation {
  seq: number;
  build: string;
  target: TargetName;
  /** instance, volume, key-pair, security-group, image, snapshot, vm, disk, file, ... */
  kind: string;
  /** The name the resource was created with (findable even before its id is known). */
  name: string;
  /** The cloud's id once the create call returned; absent for an intent. */
  id?: string;
  role: ResourceRole;
  /** Anything else needed to delete it (client token, parent image id, ...). */
  extra?: Record<string, string>;
  createdAt: string;
}

interface LedgerFile {
  format: typeof LEDGER_FORMAT;
  runId: string;
  nextSeq: number;
  entries: LedgerEntry[];
}

export type NewEntry = Omit<LedgerEntry, 'seq' | 'createdAt' | 'id'> & { id?: string };

export class Ledger {
  /** Concurrent builds of one run share the ledger: their changes share writes. */
  private readonly file: GroupCommit;

  private constructor(
    readonly path: string,
    private data: LedgerFile,
  ) {
    this.file = new GroupCommit(() => writeJsonDurably(this.path, this.data));
  }

  static async open(path: string, runId: string): Promise<Ledger> {
    await removeStaleTemps(path);
    const existing = await readJsonIfExists<LedgerFile>(path);
    return new Ledger(path, existing ?? { format: LEDGER_FORMAT, runId, nextSeq: 1, entries: [] });
  }

  get runId(): string {
    return this.data.runId;
  }

  entries(filter: { build?: string; role?: ResourceRole } = {}): LedgerEntry[] {
    return this.data.entries.filter((e) => (!filter.build || e.build === filter.build) && (!filter.role || e.role === filter.role)).map((e) => ({ ...e }));
  }

  /** Records that a resource is about to be created. Returns the entry, on disk. */
  async intend(entry: NewEntry): Promise<LedgerEntry> {
    return this.change(() => {
      const full: LedgerEntry = { ...entry, seq: this.data.nextSeq++, createdAt: new Date().toISOString() };
      this.data.entries.push(full);
      return { ...full };
    });
  }

  /** Completes an intent with the id the cloud returned (and any extra facts). */
  async created(seq: number, id: string, extra?: Record<string, string>): Promise<LedgerEntry> {
    return this.change(() => {
      const entry = this.mustFind(seq);
      entry.id = id;
      if (extra) entry.extra = { ...entry.extra, ...extra };
      return { ...entry };
    });
  }

  /** The resource is gone (deleted, or released as a kept artifact). */
  async remove(seq: number): Promise<void> {
    await this.change(() => {
      this.data.entries = this.data.entries.filter((e) => e.seq !== seq);
    });
  }

  private mustFind(seq: number): LedgerEntry {
    const entry = this.data.entries.find((e) => e.seq === seq);
    if (!entry) throw new Error(`ledger ${this.path} has no entry ${seq}`);
    return entry;
  }

  /** Changes the entries in memory, then resolves once the file on disk has the change. */
  private async change<T>(mutate: () => T): Promise<T> {
    const result = mutate();
    await this.file.commit();
    return result;
  }
}
