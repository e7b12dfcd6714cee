/**
 * Undo: delete a build's recorded resources in reverse order of creation. Every deletion is tried
 * even when an earlier one fails; what could not be deleted stays in the ledger and is returned, so
 * the caller can say exactly what is left and how to clean it.
 */
import { asKilnError } from '../core/errors.js';
import type { TargetDriver } from '../targets/target.js';
import type { Ledger, LedgerEntry, ResourceRole } from './ledger.js';

export interface UndoOptions {
  log: (line: string) => void;
  /** Undo gets a deadline of its own: an interrupt that stopped the build must not stop its undo. */
  timeoutMs?: number;
  build?: string;
  role?: ResourceRole;
  /** Only entries recorded after this ledger sequence number (what one step attempt made). */
  after?: number;
}

export async function undo(ledger: Ledger, driverFor: (entry: LedgerEntry) => TargetDriver, options: UndoOptions): Promise<LedgerEntry[]> {
  const signal = AbortSignal.timeout(options.timeoutMs ?? 60 * 60_000);
  const entries = ledger
    .entries({ build: options.build, role: options.role })
    .filter((e) => e.seq > (options.after ?? 0))
    .sort((a, b) => b.seq - a.seq);
  const left: LedgerEntry[] = [];
  for (const entry of entries) {
    const label = describeEntry(entry);
    try {
      options.log(`cleanup: deleting ${label}`);
      await driverFor(entry).destroy(entry, { log: options.log, signal });
      await ledger.remove(entry.seq);
    } catch (err) {
      options.log(`cleanup: could not delete ${label}: ${asKilnError(err).message}`);
      left.push(entry);
    }
  }
  return left;
}

export function describeEntry(entry: LedgerEntry): string {
  const where = entry.region ?? entry.zone ?? entry.group;
  return `${entry.target} ${entry.kind} ${entry.id ?? `(named ${entry.name}, id not yet known)`}${where ? ` in ${where}` : ''}`;
}
