/** The table printed at the end of a run: one row per build. */
import { formatDuration } from '../core/duration.js';
import type { BuildResult } from '../pipeline/build.js';
import { renderCheckTable } from '../validate/table.js';
import type { Output } from './output.js';

export function printSummary(results: BuildResult[], manifestPath: string, out: Output): void {
  const rows = results.map((r) => {
    const total = Object.values(r.timingsMs).reduce((a, b) => a + (b ?? 0), 0);
    const artifacts = r.artifacts.map((a) => `${a.region ? `${a.region}:` : ''}${a.id}`).join(' ');
    return [r.buildId, r.status, formatDuration(total), r.status === 'succeeded' ? artifacts : (r.error?.message.split('\n')[0] ?? '')];
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
  const leftovers = results.flatMap((r) => r.leftovers);
  if (leftovers.length > 0) {
    out.line();
    out.line(`${leftovers.length} resource(s) were kept or could not be deleted; delete them with: kiln cleanup --run ${results[0]?.plan.runId ?? '<run id>'}`);
  }
  out.line(`manifest: ${manifestPath}`);
}
