import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../../src/core/errors.js';
import type { Manifest } from '../../../src/pipeline/manifest.js';
import { mergeManifestFiles, mergeManifests } from '../../../src/release/merge.js';
import { readManifest } from '../../../src/release/manifest-schema.js';
import { fixture, tempDir, writeJson } from './fixture.js';

/** The fixture split like `--shard i/n` would (every n-th build), each shard with its own times. */
function shards(count: number): Manifest[] {
  const all = fixture();
  return Array.from({ length: count }, (_, i) => ({
    ...all,
    startedAt: `2024-06-14T02:0${i}:00.000Z`,
    updatedAt: `2024-06-14T03:1${i}:00.000Z`,
    builds: all.builds.filter((_, j) => j % count === i),
  }));
}

function inputError(action: () => unknown): InputError {
  try {
    action();
  } catch (err) {
    if (err instanceof InputError) return err;
    throw err;
  }
  throw new Error('expected an InputError');
}

/** A deep copy with every object's keys in reverse order. */
function reversedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversedKeys);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, reversedKeys(v)]));
  return value;
}

const order = (m: Manifest) => m.builds.map((b) => `${b.target} ${b.size}`);

describe('kiln manifest merge', () => {
  it('joins shards into one manifest sorted by target, then size XS..XL', () => {
    const parts = shards(4);
    const { manifest, duplicates } = mergeManifests(parts.reverse().map((m, i) => ({ file: `shard-${i}.json`, manifest: m })));
    expect(order(manifest)).toEqual(['aws XS', 'aws S', 'aws M', 'azure XS', 'azure S', 'gcp XS', 'gcp S', 'local XS']);
    expect(manifest.builds).toHaveLength(fixture().builds.length);
    expect(manifest.startedAt).toBe('2024-06-14T02:00:00.000Z');
    expect(manifest.updatedAt).toBe('2024-06-14T03:13:00.000Z');
    expect(duplicates).toEqual([]);
    const byId = new Map(fixture().builds.map((b) => [b.buildId, b]));
    for (const build of manifest.builds) expect(build).toEqual(byId.get(build.buildId));
  });

  it('refuses shards of another run, naming the file and the field', () => {
    const [a, b, c] = shards(3);
    const err = inputError(() =>
      mergeManifests([
        { file: 'shard-1.json', manifest: a! },
        { file: 'shard-2.json', manifest: { ...b!, runId: 'rother00001' } },
        { file: 'shard-3.json', manifest: c! },
      ]),
    );
    expect(err.issues).toEqual([
      {
        file: 'shard-2.json',
        field: 'runId',
        message: 'expected run "rlxq7k2m0a9f3" (as in shard-1.json), found "rother00001": only the shards of one run can be merged',
      },
    ]);
  });

  it('refuses another version or definition, one issue per difference', () => {
    const [a, b] = shards(2);
    const changed = { ...b!, version: '5.2.1', definition: { ...b!.definition, sha256: 'f'.repeat(64) } };
    const err = inputError(() => mergeManifests([{ file: 'a.json', manifest: a! }, { file: 'b.json', manifest: changed }]));
    expect(err.issues.map((i) => `${i.file} ${i.field}`)).toEqual(['b.json definition.sha256', 'b.json version']);
    expect(err.message).toMatch(/b\.json: version: expected version "5\.2\.0" \(as in a\.json\), found "5\.2\.1"/);
    expect(err.message).toMatch(/the definition changed between shards/);
  });

  it('accepts a build that appears twice identically (whatever the key order)', () => {
    const [a, b] = shards(2);
    const copy = reversedKeys(a!.builds[0]) as Manifest['builds'][number];
    expect(Object.keys(copy)).not.toEqual(Object.keys(a!.builds[0]!));
    const { manifest, duplicates } = mergeManifests([
      { file: 'a.json', manifest: a! },
      { file: 'b.json', manifest: { ...b!, builds: [...b!.builds, copy] } },
    ]);
    expect(duplicates).toEqual([a!.builds[0]!.buildId]);
    expect(manifest.builds).toHaveLength(fixture().builds.length);
  });

  it('refuses a build that appears twice with different content, naming both files', () => {
    const [a, b] = shards(2);
    const changed = { ...a!.builds[0]!, status: 'failed' as const, artifacts: [] };
    const err = inputError(() => mergeManifests([{ file: 'a.json', manifest: a! }, { file: 'b.json', manifest: { ...b!, builds: [changed, ...b!.builds] } }]));
    expect(err.issues).toHaveLength(1);
    expect(err.issues[0]).toMatchObject({ file: 'b.json', field: 'builds[0]' });
    expect(err.issues[0]?.message).toMatch(new RegExp(`^build ${a!.builds[0]!.buildId} \\(status failed\\) is also in a\\.json \\(builds\\[0\\]\\) \\(status succeeded\\) with different content`));
  });

  it('also refuses a build twice within one file', () => {
    const m = fixture();
    m.builds.push({ ...m.builds[0]!, status: 'interrupted' });
    const err = inputError(() => mergeManifests([{ file: 'one.json', manifest: m }]));
    expect(err.issues[0]).toMatchObject({ file: 'one.json', field: `builds[${m.builds.length - 1}]`, message: expect.stringContaining('builds[0] of this file') });
  });

  it('reads the files, writes the result atomically, and it reads back as a valid manifest', async () => {
    const dir = tempDir();
    const files = shards(4).map((m, i) => writeJson(dir, `manifest-shard-${i + 1}.json`, m));
    const out = join(dir, 'out', 'kiln-manifest.json');
    const { manifest } = await mergeManifestFiles(out, files);
    expect(await readManifest(out)).toEqual(manifest);
    expect(readFileSync(out, 'utf8')).toBe(`${JSON.stringify(manifest, null, 2)}\n`);
    expect(readdirSync(join(dir, 'out'))).toEqual(['kiln-manifest.json']);
  });

  it('reports bad inputs of every file at once and writes nothing', async () => {
    const dir = tempDir();
    const good = writeJson(dir, 'good.json', fixture());
    const bad = writeJson(dir, 'bad.json', { ...fixture(), version: 'latest' });
    const out = join(dir, 'merged.json');
    const err = await mergeManifestFiles(out, [good, bad, join(dir, 'gone.json')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).issues.map((i) => `${i.file} ${i.field ?? ''}`.trim())).toEqual([`${bad} version`, join(dir, 'gone.json')]);
    expect(existsSync(out)).toBe(false);
  });
});
