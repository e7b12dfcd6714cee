import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareVersions, headingToken, updateChangelog, updateChangelogFile } from '../../../src/release/changelog.js';
import { releaseNotes } from '../../../src/release/notes.js';
import { FIXTURE, tempDir } from './fixture.js';

const section = (version: string, body = 'new notes') => `## ${version}\n\n${body}\n\n### AWS\n\n| size | AMI |\n|---|---|\n| XS | \`ami-1\` |\n`;

const INTRO = '# Changelog\n\nAll notable changes to the appliance images. Newest first.\n';
const UNRELEASED = '## Unreleased\n\n- nothing yet\n';
const V510 = '## 5.1.0 - 2024-03-01\n\nOld notes for 5.1.0.\n\n### AWS\n\nold table\n';
const RC = '## 5.2.0-rc.1\n\nRelease candidate notes: must survive.\n';
const V500 = '## [5.0.0] - 2024-01-10\n\n```md\n## 5.2.0\nnot a heading: inside a code fence\n```\n';
const LINKS = '[5.0.0]: https://example.com/5.0.0\n[5.1.0]: https://example.com/5.1.0\n';
const doc = (...parts: string[]) => parts.join('\n');

describe('CHANGELOG update', () => {
  it('inserts a new version above the previous newest one, below the intro and Unreleased', () => {
    const before = doc(INTRO, UNRELEASED, RC, V510, V500);
    const { text, action } = updateChangelog(before, '5.2.0', section('5.2.0'));
    expect(action).toBe('inserted');
    expect(text).toBe(doc(INTRO, UNRELEASED, section('5.2.0'), RC, V510, V500));
  });

  it('puts a pre-release above its older versions and below the final release it precedes', () => {
    const before = doc(INTRO, section('5.2.0', 'final'), V510);
    expect(updateChangelog(before, '5.2.0-rc.1', section('5.2.0-rc.1')).text).toBe(doc(INTRO, section('5.2.0', 'final'), section('5.2.0-rc.1'), V510));
  });

  it('replaces the version\'s section, found by its heading, leaving the others byte for byte', () => {
    const before = doc(INTRO, UNRELEASED, section('5.2.0', 'stale notes'), RC, V510, V500);
    const { text, action } = updateChangelog(before, '5.2.0', section('5.2.0', 'fresh notes'));
    expect(action).toBe('replaced');
    expect(text).toBe(doc(INTRO, UNRELEASED, section('5.2.0', 'fresh notes'), RC, V510, V500));
    expect(text).toContain(RC);
    expect(text).not.toContain('stale notes');
  });

  it('does not confuse 5.2.0 with 5.2.0-rc.1, 5.2.01 or a heading in a code fence', () => {
    const before = doc(INTRO, RC, '## 5.2.01\n\nnot semver but not ours either\n', V500);
    const { text, action } = updateChangelog(before, '5.2.0', section('5.2.0'));
    expect(action).toBe('inserted');
    expect(text).toContain(RC);
    expect(text).toContain('not semver but not ours either');
    expect(text).toContain('not a heading: inside a code fence');
    expect(text.indexOf(section('5.2.0'))).toBeLessThan(text.indexOf(RC));
    // and the other way round: releasing the rc leaves 5.2.0 alone
    const other = updateChangelog(doc(INTRO, section('5.2.0', 'final'), V500), '5.2.0-rc.1', section('5.2.0-rc.1'));
    expect(other.action).toBe('inserted');
    expect(other.text).toContain(section('5.2.0', 'final'));
  });

  it('finds headings written in other common styles', () => {
    for (const heading of ['## 5.2.0', '## v5.2.0', '## [5.2.0] - 2024-06-14', '## [5.2.0](https://example.com/compare) (2024-06-14)', '## 5.2.0: title', '## 5.2.0 - Sourcegraph']) {
      expect(headingToken(heading), heading).toBe('5.2.0');
    }
    for (const heading of ['## 5.2.0-rc.1', '## 5.2.01', '### 5.2.0', '#5.2.0', '## Unreleased']) expect(headingToken(heading), heading).not.toBe('5.2.0');
    const { text, action } = updateChangelog(doc(INTRO, '## [5.2.0] - 2024-06-14\n\nold\n', V510), '5.2.0', section('5.2.0'));
    expect(action).toBe('replaced');
    expect(text).toBe(doc(INTRO, section('5.2.0'), V510));
  });

  it('gives the same file when run twice (insert, then replace with the same notes)', () => {
    for (const before of [doc(INTRO, UNRELEASED, RC, V510, V500), doc(INTRO), doc(INTRO, V510), doc(INTRO, V510, LINKS), INTRO.trimEnd()]) {
      const once = updateChangelog(before, '5.2.0', section('5.2.0')).text;
      const twice = updateChangelog(once, '5.2.0', section('5.2.0'));
      expect(twice.action, before).toBe('unchanged');
      expect(twice.text).toBe(once);
    }
  });

  it('keeps link reference definitions at the end of the file where they are', () => {
    const before = doc(INTRO, V510, V500, LINKS);
    const inserted = updateChangelog(before, '4.9.0', section('4.9.0')).text;
    expect(inserted).toBe(doc(INTRO, V510, V500, section('4.9.0'), LINKS));
    const replaced = updateChangelog(doc(INTRO, V510, section('4.9.0', 'old'), LINKS), '4.9.0', section('4.9.0')).text;
    expect(replaced).toBe(doc(INTRO, V510, section('4.9.0'), LINKS));
  });

  it('inserts below the intro when there is no version yet, and creates a missing changelog', () => {
    expect(updateChangelog(INTRO, '5.2.0', section('5.2.0')).text).toBe(doc(INTRO, section('5.2.0')));
    expect(updateChangelog(undefined, '5.2.0', section('5.2.0'))).toEqual({ text: doc('# Changelog\n', section('5.2.0')), action: 'created' });
  });

  it('keeps Windows line endings', () => {
    const crlf = doc(INTRO, V510).replace(/\n/g, '\r\n');
    const { text } = updateChangelog(crlf, '5.2.0', section('5.2.0'));
    expect(text).toBe(doc(INTRO, section('5.2.0'), V510).replace(/\n/g, '\r\n'));
  });

  it('orders versions by semantic version precedence', () => {
    const sorted = ['5.2.0-alpha', '5.2.0-rc.1', '5.2.0-rc.2', '5.2.0-rc.10', '5.2.0', '5.2.1', '5.10.0', '6.0.0'];
    expect([...sorted].reverse().sort(compareVersions)).toEqual(sorted);
  });

  it('updates CHANGELOG.md from a manifest idempotently (kiln release notes --changelog)', async () => {
    const dir = tempDir();
    const path = join(dir, 'CHANGELOG.md');
    writeFileSync(path, doc(INTRO, UNRELEASED, V510));
    const first = await releaseNotes({ manifest: FIXTURE, changelog: path });
    expect(first.changelog).toEqual({ path, action: 'inserted' });
    const once = readFileSync(path, 'utf8');
    expect(once).toBe(doc(INTRO, UNRELEASED, first.notes, V510));
    expect((await releaseNotes({ manifest: FIXTURE, changelog: path })).changelog?.action).toBe('unchanged');
    expect(readFileSync(path, 'utf8')).toBe(once);
    await releaseNotes({ manifest: FIXTURE, changelog: path, title: 'Sourcegraph appliance images' });
    const retitled = readFileSync(path, 'utf8');
    expect(retitled).toContain('## 5.2.0 - Sourcegraph appliance images\n');
    expect(retitled.match(/^## 5\.2\.0/gm)).toHaveLength(1);
  });

  it('writes the file only when it changes, creating a missing one and keeping its mode', async () => {
    const dir = tempDir();
    const path = join(dir, 'CHANGELOG.md');
    expect(await updateChangelogFile(path, '5.2.0', section('5.2.0'))).toBe('created');
    chmodSync(path, 0o640);
    expect(await updateChangelogFile(path, '5.2.1', section('5.2.1'))).toBe('inserted');
    expect(statSync(path).mode & 0o777).toBe(0o640);
    const before = statSync(path).mtimeMs;
    expect(await updateChangelogFile(path, '5.2.1', section('5.2.1'))).toBe('unchanged');
    expect(statSync(path).mtimeMs).toBe(before);
    expect(readdirSync(dir)).toEqual(['CHANGELOG.md']);
    expect(readFileSync(path, 'utf8')).toBe(doc('# Changelog\n', section('5.2.1'), section('5.2.0')));
  });

  it('refuses a section that does not start with the version heading (a bug, not input)', () => {
    expect(() => updateChangelog(INTRO, '5.2.0', '## 5.2.1\n')).toThrow(/must start with "## 5.2.0"/);
  });
});
