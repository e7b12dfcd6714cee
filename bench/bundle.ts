/**
 * Bundle benchmark: `npx tsx bench/bundle.ts [--mb 300]`.
 *
 * Serves the stand-in release sites from the test artifact server on 127.0.0.1 with the K3s binary
 * replaced by a random file of --mb MB (its sha256sum file rewritten), then times kiln's bundle
 * steps: a cold `createBundle` (download, sha256 check, cache, pack), a warm one (everything from
 * the cache, hashed again while packed), `verifyBundle` (one streaming read, every entry hashed),
 * and a download of the same file cut in the middle and resumed. Prints seconds and MB/s for each,
 * and `sha256sum` of the bundle for scale.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createBundle, verifyBundle } from '../src/bundle/index.js';
import { download } from '../src/bundle/download.js';
import { planFor, startArtifacts } from '../test/support/provision-fixture.js';
import { writeRandomFile } from './random-file.js';

const run = promisify(execFile);
const MB = 1024 * 1024;
const i = process.argv.indexOf('--mb');
const sizeMb = i >= 0 ? Number(process.argv[i + 1]) : 300;
if (!Number.isFinite(sizeMb) || sizeMb <= 0) throw new Error('--mb must be a positive number');

async function time(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

const work = mkdtempSync(join(tmpdir(), 'kiln-bench-bundle-'));
const artifacts = await startArtifacts({ requireToken: false });
try {
  const version = 'v1.29.6+k3s2';
  const release = join(artifacts.server.root, 'k3s', version);
  const binary = join(release, 'k3s');
  const binarySha256 = writeRandomFile(binary, sizeMb * MB);
  const sums = readFileSync(join(release, 'sha256sum-amd64.txt'), 'utf8').replace(/^[a-f0-9]{64}( {2}k3s)$/m, `${binarySha256}$1`);
  writeFileSync(join(release, 'sha256sum-amd64.txt'), sums);

  const plan = await planFor('images/sourcegraph.yaml', 'local', 'xs', '5.2.0', artifacts.mirrors());
  const output = join(work, 'bundle.tar');
  const options = { plan, output, cacheDir: join(work, 'cache') };
  const cold = await time(() => createBundle(options));
  const warm = await time(() => createBundle(options));
  const verify = await time(() => verifyBundle(output));
  const sha = await time(() => run('sha256sum', [output]));
  artifacts.server.setFault(`/k3s/${version}/k3s`, { kind: 'cut', afterBytes: Math.floor((sizeMb * MB) / 2), times: 1 });
  let resumedFrom: number[] = [];
  const resumed = await time(async () => {
    resumedFrom = (await download(`${artifacts.server.url}/k3s/v1.29.6%2Bk3s2/k3s`, join(work, 'k3s'), { retryDelayMs: 10 })).resumedFrom;
  });
  const bundleMb = statSync(output).size / MB;
  const line = (what: string, seconds: number, mb: number) => console.log(`${what.padEnd(44)} ${seconds.toFixed(2).padStart(7)} s  ${(mb / seconds).toFixed(0).padStart(6)} MB/s`);
  console.log(`bundle of ${bundleMb.toFixed(0)} MB (K3s stand-in of ${sizeMb} MB), artifacts on 127.0.0.1`);
  line('kiln bundle, cold cache (download+check+pack)', cold, bundleMb);
  line('kiln bundle, warm cache (hash while packing)', warm, bundleMb);
  line('kiln bundle verify (stream, hash every entry)', verify, bundleMb);
  line('sha256sum of the bundle (for scale)', sha, bundleMb);
  line(`download cut at 50%, resumed at byte ${resumedFrom.join(', ')}`, resumed, sizeMb);
} finally {
  await artifacts.close();
  rmSync(work, { recursive: true, force: true });
}
