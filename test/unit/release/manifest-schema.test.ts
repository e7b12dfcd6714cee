import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError, type InputIssue } from '../../../src/core/errors.js';
import { parseManifest, readManifest } from '../../../src/release/manifest-schema.js';
import { FIXTURE, fixture, tempDir, writeJson } from './fixture.js';

/** The issues of the InputError `action` throws (fails the test if it throws anything else). */
async function issuesOf(action: () => unknown): Promise<InputIssue[]> {
  try {
    await action();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return (err as InputError).issues;
  }
  throw new Error('expected an InputError, nothing was thrown');
}

describe('manifest schema', () => {
  it('reads the realistic fixture as written', async () => {
    const manifest = await readManifest(FIXTURE);
    expect(manifest).toEqual(fixture());
    expect(manifest.builds).toHaveLength(8);
  });

  it('keeps fields it does not know (a newer kiln added them: additions keep the version)', () => {
    const m = { ...fixture(), release: { channel: 'stable' } };
    m.builds[0] = { ...m.builds[0]!, ...{ boots: { count: 3 } } };
    const read = parseManifest(JSON.stringify(m), 'new.json') as unknown as Record<string, unknown>;
    expect(read.release).toEqual({ channel: 'stable' });
    expect((read.builds as Record<string, unknown>[])[0]?.boots).toEqual({ count: 3 });
  });

  it('reports every problem at once, with file, line, column, field, expected and found', async () => {
    const m = fixture() as unknown as { builds: Record<string, unknown>[]; startedAt: string };
    m.builds[0]!.size = 'XXL';
    delete m.builds[0]!.k3sVersion;
    (m.builds[1]!.artifacts as Record<string, unknown>[])[0]!.sizeBytes = -1;
    m.startedAt = 'yesterday';
    const file = writeJson(tempDir(), 'bad.json', m);
    const issues = await issuesOf(() => readManifest(file));
    expect(issues.map((i) => `${i.field}: ${i.message}`)).toEqual([
      'startedAt: expected an ISO 8601 time like 2024-06-01T12:00:00.000Z, found "yesterday"',
      'builds[0].k3sVersion: required: expected string, found nothing',
      'builds[0].size: expected one of "XS", "S", "M", "L", "XL", found "XXL"',
      'builds[1].artifacts[0].sizeBytes: expected a number >= 0, found number -1',
    ]);
    expect(issues.every((i) => i.file === file)).toBe(true);
    // Positions point into the file: line 16 holds builds[0].size in the written JSON.
    const size = issues.find((i) => i.field === 'builds[0].size');
    expect(size).toMatchObject({ line: 16, column: 15 });
  });

  it('refuses a manifest version it does not know, saying a newer kiln wrote it', async () => {
    const issues = await issuesOf(() => parseManifest(JSON.stringify({ ...fixture(), manifestVersion: 2 }), 'v2.json'));
    expect(issues).toEqual([expect.objectContaining({ file: 'v2.json', field: 'manifestVersion', message: expect.stringMatching(/^expected 1, found 2 \(written by a newer kiln/) })]);
  });

  it.each([
    ['invalid JSON', '{"manifestVersion": 1,\n  "runId": "x",\n}\n', /^expected a JSON manifest, found invalid JSON/, 3],
    ['an empty file', '', /^expected a JSON manifest, found invalid JSON/, 1],
    ['a list', '[]', /^expected a JSON object \(a kiln manifest\), found a list$/, 1],
    ['a bad run id', JSON.stringify({ ...fixture(), runId: 'Run 1' }), /^expected a kiln run id .*, found "Run 1"$/, 1],
    ['a bad status', JSON.stringify({ ...fixture(), builds: [{ ...fixture().builds[0], status: 'done' }] }), /^expected one of "succeeded", "failed", "interrupted", "running", "pending", found "done"$/, 1],
  ])('refuses %s', async (_what, text, message, line) => {
    const issues = await issuesOf(() => parseManifest(text, 'm.json'));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ file: 'm.json', line, message: expect.stringMatching(message) });
  });

  it('names a file that cannot be read', async () => {
    const dir = tempDir();
    expect(await issuesOf(() => readManifest(join(dir, 'missing.json')))).toEqual([{ file: join(dir, 'missing.json'), message: 'cannot read manifest: no such file' }]);
    expect(await issuesOf(() => readManifest(dir))).toEqual([{ file: dir, message: 'cannot read manifest: it is a directory' }]);
    writeFileSync(join(dir, 'x.json'), '{}');
    const issues = await issuesOf(() => readManifest(join(dir, 'x.json')));
    expect(issues.map((i) => i.field)).toEqual(expect.arrayContaining(['manifestVersion', 'runId', 'builds']));
  });
});
