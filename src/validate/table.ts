/** The pass/fail table `kiln validate` and `kiln build --validate` print. */
import type { CheckResult } from './run-checks.js';

export function renderCheckTable(results: CheckResult[]): string {
  const rows = results.map((r) => [r.passed ? 'pass' : 'FAIL', r.name, r.passed ? shorten(r.actual) : describeFailure(r)]);
  const widths = [0, 1].map((i) => Math.max(...[i === 0 ? 'result' : 'check', ...rows.map((row) => row[i] ?? '')].map((cell) => cell.length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i] ?? 0) : cell)).join('  ').trimEnd();
  const failed = results.filter((r) => !r.passed).length;
  const summary = failed === 0 ? `all ${results.length} checks passed` : `${failed} of ${results.length} checks failed`;
  return [line(['result', 'check', 'output']), ...rows.map(line), summary].join('\n');
}

function describeFailure(result: CheckResult): string {
  const got = result.actual === '' ? '(no output)' : shorten(result.actual);
  const exit = result.exitCode === 0 ? '' : `, exit ${result.exitCode ?? 'killed'}`;
  return result.expected === undefined ? `${got}${exit}` : `expected ${JSON.stringify(result.expected)}, got ${got}${exit}`;
}

function shorten(text: string, max = 100): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}
