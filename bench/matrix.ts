/**
 * A release matrix against the fast fakes: aws,gcp,azure x all five sizes in one run (15 builds at
 * once, transition latency and 10% throttling, one shared set of rate limiters; the world of
 * test/integration/matrix/matrix.test.ts). Prints the run's wall time, its slowest build's time and
 * their ratio (the issue wants the run not much longer than its slowest build), how much the builds
 * overlapped, and what the rate limiters did.
 *
 * Run with `npx tsx bench/matrix.ts [runs] [--documented-rates]` (needs sshd, as the integration
 * tests do). With --documented-rates the limiters use the clouds' documented rates (kiln's defaults)
 * instead of the test's higher ones: the run then shows what the shared budget costs.
 */
import { formatDuration } from '../src/core/duration.js';
import { buildDurationMs } from '../src/cli/summary.js';
import { DEFAULT_API_RATES } from '../src/targets/rate-limits.js';
import { startMatrixWorld, TEST_API_RATES } from '../test/support/matrix-world.js';

const args = process.argv.slice(2);
const runs = Number(args.find((a) => /^\d+$/.test(a)) ?? 1);
const documented = args.includes('--documented-rates');
const rates = documented ? DEFAULT_API_RATES : TEST_API_RATES;
const world = await startMatrixWorld({ rates });
console.log(`matrix: aws,gcp,azure x XS..XL, concurrency 15, 10% of requests throttled, API rates per second ${JSON.stringify(rates)}`);
try {
  for (let n = 1; n <= runs; n++) {
    // A version per run: a gallery version, once published, is never replaced.
    const plans = await world.plans(`rbench${Date.now().toString(36)}`.slice(0, 16), `5.2.${n}`);
    const run = await world.run(plans);
    const failed = run.results.filter((r) => r.status !== 'succeeded');
    if (failed.length > 0) throw new Error(`${failed.length} build(s) failed: ${failed.map((r) => `${r.buildId}: ${r.error?.message}`).join('; ')}`);
    const times = run.results.map((r) => ({ id: r.buildId, ms: buildDurationMs(r) }));
    const slowest = times.reduce((a, b) => (b.ms > a.ms ? b : a));
    const sum = times.reduce((a, b) => a + b.ms, 0);
    console.log(
      `run ${n}: wall ${formatDuration(run.durationMs)}, slowest build ${formatDuration(slowest.ms)} (${slowest.id}), ` +
        `ratio ${(run.durationMs / slowest.ms).toFixed(2)}; builds overlapped ${(sum / run.durationMs).toFixed(1)}x ` +
        `(sum of build times ${formatDuration(sum)})`,
    );
    for (const target of ['aws', 'gcp', 'azure']) {
      const mine = times.filter((t) => t.id.includes(`-${target}-`)).map((t) => t.ms);
      console.log(`  ${target.padEnd(5)} builds: ${mine.map(formatDuration).join(', ')}`);
    }
  }
  const limiters = world.rateLimits.all();
  const total = (kind: 'read' | 'write', field: 'calls' | 'delayed') => limiters.reduce((a, l) => a + l.counts[kind][field], 0);
  console.log(`rate limiters: ${limiters.length} keys; reads ${total('read', 'calls')} (${total('read', 'delayed')} waited), writes ${total('write', 'calls')} (${total('write', 'delayed')} waited)`);
  console.log(`throttled by the fakes and retried: ec2 ${world.ec2.faults.served.throttle}, gce ${world.gce.faults.served.throttle}, arm ${world.arm.faults.served.throttle}`);
} finally {
  await world.close();
}
