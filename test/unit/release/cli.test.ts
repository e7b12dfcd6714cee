/** The two release commands as a user runs them: output, exit codes, error messages. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../../src/core/errors.js';
import { FIXTURE, GOLDEN, fixture, tempDir, writeJson } from './fixture.js';
import { kiln, kilnInProcess, registerFunctions } from './kiln-cli.js';

describe('kiln manifest merge / kiln release notes (CLI)', () => {
  beforeAll(() => registerFunctions(), 120_000);

  it('merge writes the merged manifest and says what it joined', async () => {
    const dir = tempDir();
    const all = fixture();
    const files = [0, 1].map((i) => writeJson(dir, `s${i}.json`, { ...all, builds: all.builds.filter((_, j) => j % 2 === i) }));
    const out = join(dir, 'kiln-manifest.json');
    const result = await kilnInProcess('manifest', 'merge', out, ...files);
    expect(result.error).toBeUndefined();
    expect(result.stdout).toBe(`${out}: run rlxq7k2m0a9f3, 8 build(s) from 2 manifest(s), 1 not succeeded\n`);
    expect((JSON.parse(readFileSync(out, 'utf8')) as { builds: unknown[] }).builds).toHaveLength(8);
  });

  it('merge needs an output and at least one manifest', async () => {
    const result = await kilnInProcess('manifest', 'merge', 'out.json');
    expect(result.stderr).toMatch(/missing required argument 'manifest'/);
  });

  it('notes prints the notes, or updates the changelog and says so', async () => {
    const dir = tempDir();
    const changelog = join(dir, 'CHANGELOG.md');
    writeFileSync(changelog, '# Changelog\n\n## 5.1.0\n\nolder\n');
    const printed = await kilnInProcess('release', 'notes', FIXTURE);
    expect(printed.error).toBeUndefined();
    expect(printed.stdout).toBe(readFileSync(join(GOLDEN, 'sourcegraph-5.2.0.md'), 'utf8'));
    const updated = await kilnInProcess('release', 'notes', FIXTURE, '--changelog', changelog, '--title', 'Sourcegraph appliance images');
    expect(updated.stdout).toBe(`${changelog}: inserted the section for 5.2.0\n`);
    const expected = printed.stdout.replace(/^## 5\.2\.0\n/, '## 5.2.0 - Sourcegraph appliance images\n');
    expect(readFileSync(changelog, 'utf8')).toBe(`# Changelog\n\n${expected}\n## 5.1.0\n\nolder\n`);
    const again = await kilnInProcess('release', 'notes', FIXTURE, '--changelog', changelog, '--title', 'Sourcegraph appliance images');
    expect(again.stdout).toBe(`${changelog}: unchanged the section for 5.2.0\n`);
  });

  it('notes refuses a bad manifest with an input error naming the file', async () => {
    const file = writeJson(tempDir(), 'bad.json', { ...fixture(), builds: [{ ...fixture().builds[0], target: 'openstack' }] });
    const result = await kilnInProcess('release', 'notes', file);
    expect(result.error).toBeInstanceOf(InputError);
    expect((result.error as InputError).message).toBe(`${file}:15:17: builds[0].target: expected one of "aws", "azure", "gcp", "local", found "openstack"`);
  });

  it('the real binary exits 2 naming the shard of another run, without a stack trace', { timeout: 150_000 }, async () => {
    const dir = tempDir();
    const a = writeJson(dir, 'shard-1.json', fixture());
    const b = writeJson(dir, 'shard-2.json', { ...fixture(), runId: 'rother00001' });
    const result = await kiln('manifest', 'merge', join(dir, 'out.json'), a, b);
    expect(result.stderr).toContain(`${b}: runId: expected run "rlxq7k2m0a9f3" (as in ${a}), found "rother00001"`);
    expect(result.stderr).not.toContain('    at ');
    expect(result.exitCode).toBe(2);
  });
});
