/** The table printed at the end of a run: one row per build, then the totals. */
import { formatDuration } from '../core/duration.js';
import type { BuildResult } from '../pipeline/build.js';
import type { RunResult } from '../pipeline/run.js';
import { renderCheckTable } from '../validate/table.js';
import type { Output } from './output.js';

export function printSummary(run: Pick<RunResult, 'results' | 'durationMs' | 'runId'>, manifestPath: string, out: Output): void {
  const { results } = run;
  const rows = results.map((r) => {
    const artifacts = r.artifacts.map((a) => `${a.region ? `${a.region}:` : ''}${a.id}`).join(' ');
    return [r.buildId, r.status, r.startedAt ? formatDuration(buildDurationMs(r)) : '-', r.status === 'succeeded' ? artifacts : (r.error?.message.split('\n')[0] ?? '')];
  });
  const header = ['build', 'status', 'time', 'artifacts / error'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const format = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  out.line();
  out.line(out.bold(format(header)));
  for (const row of rows) out.line(format(row));
  for (const r of results.filter((result) => result.validation?.some((c) => !c.passed))) {
    out.line();
    out.line(`${r.buildId}: the validation instance failed these checks (the image was not published):`);
    out.line(renderCheckTable(r.validation?.filter((c) => !c.passed) ?? []));
  }
  out.line();
  out.line(totals(run));
  const leftovers = results.flatMap((r) => r.leftovers);
  if (leftovers.length > 0) {
    out.line();
    for (const r of results) if (r.sshCommand) out.line(`${r.buildId}: its VM is kept; get in with: ${r.sshCommand}`);
    out.line(`${leftovers.length} resource(s) were kept or could not be deleted; delete them with: kiln cleanup --run ${run.runId}`);
  }
  out.line(`manifest: ${manifestPath}`);
}

/** A build's wall time from its start to the end of its cleanup; its steps' sum if it has no times. */
export function buildDurationMs(result: BuildResult): number {
  if (result.startedAt && result.finishedAt) return Date.parse(result.finishedAt) - Date.parse(result.startedAt);
  return Object.values(result.timingsMs).reduce((a, b) => a + (b ?? 0), 0);
}

/** "15 builds: 14 succeeded, 1 failed; the run took 3m02s, its slowest build 2m50s" */
export function totals(run: Pick<RunResult, 'results' | 'durationMs'>): string {
  const counts = new Map<string, number>();
  for (const r of run.results) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  const parts = ['succeeded', 'failed', 'interrupted'].filter((s) => counts.has(s)).map((s) => `${counts.get(s)} ${s}`);
  const slowest = Math.max(0, ...run.results.filter((r) => r.startedAt).map(buildDurationMs));
  const n = run.results.length;
  return `${n} build${n === 1 ? '' : 's'}: ${parts.join(', ')}; the run took ${formatDuration(run.durationMs)}, its slowest build ${formatDuration(slowest)}`;
}
