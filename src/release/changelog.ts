/**
 * Putting a version's release notes into CHANGELOG.md, idempotently. A version's section is found by
 * its heading (`## 5.2.0`, `## [5.2.0] - 2024-06-01`, `## v5.2.0: title`), never by line number, and
 * runs to the next `#` or `##` heading outside code fences. If present it is replaced; if not, the
 * new section goes above the newest version older than it (normally the previous release, i.e. the
 * top one), below any intro or `## Unreleased`; a version older than all of them goes last. Running
 * it twice gives the same file; other sections are left byte for byte.
 */
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { PRODUCT_VERSION } from '../definition/values.js';

export type ChangelogAction = 'created' | 'inserted' | 'replaced' | 'unchanged';

interface Heading {
  index: number;
  level: number;
  /** The version-like word the heading starts with, without brackets or a leading "v". */
  token?: string;
}

/** Returns the changelog with `section` (Markdown starting `## <version>`) in place. */
export function updateChangelog(original: string | undefined, version: string, section: string): { text: string; action: ChangelogAction } {
  const wanted = stripV(version);
  const sectionLines = trimBlankEnd(section.replace(/\r\n/g, '\n').split('\n'));
  if (headingToken(sectionLines[0] ?? '') !== wanted) throw new Error(`internal: a changelog section must start with "## ${version}", found ${JSON.stringify(sectionLines[0])}`);
  if (original === undefined || original.trim() === '') return { text: `# Changelog\n\n${sectionLines.join('\n')}\n`, action: 'created' };

  const eol = original.includes('\r\n') ? '\r\n' : '\n';
  const lines = original.replace(/\r\n/g, '\n').split('\n');
  const finalNewline = lines.at(-1) === '';
  if (finalNewline) lines.pop();
  const headings = findHeadings(lines);
  // Link reference definitions at the very end (`[5.2.0]: https://...`) belong to the whole file.
  const contentEnd = footerStart(lines, headings.at(-1)?.index ?? -1);
  const sectionEnd = (h: Heading) => headings.find((n) => n.index > h.index && n.level <= 2)?.index ?? contentEnd;

  let result: string[];
  let action: ChangelogAction;
  const existing = headings.find((h) => h.level === 2 && h.token === wanted);
  if (existing) {
    const end = sectionEnd(existing);
    result = [...lines.slice(0, existing.index), ...sectionLines, ...(end < lines.length ? [''] : []), ...lines.slice(end)];
    action = 'replaced';
  } else {
    const versions = headings.filter((h) => h.level === 2 && h.token !== undefined && PRODUCT_VERSION.test(h.token));
    const older = versions.find((h) => compareVersions(h.token ?? '', wanted) < 0);
    const last = versions.at(-1);
    const at = older ? older.index : last ? sectionEnd(last) : contentEnd;
    const head = trimBlankEnd(lines.slice(0, at));
    const tail = lines.slice(at);
    result = [...head, ...(head.length > 0 ? [''] : []), ...sectionLines, ...(tail.length > 0 ? [''] : []), ...tail];
    action = 'inserted';
  }
  const text = `${result.join('\n')}${finalNewline || action === 'inserted' ? '\n' : ''}`.replace(/\n/g, eol);
  return text === original ? { text, action: 'unchanged' } : { text, action };
}

/** Updates (or creates) a changelog file; the new content replaces the old atomically. */
export async function updateChangelogFile(path: string, version: string, section: string): Promise<ChangelogAction> {
  let original: string | undefined;
  let mode = 0o644;
  try {
    original = await readFile(path, 'utf8');
    mode = (await stat(path)).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const { text, action } = updateChangelog(original, version, section);
  if (action === 'unchanged') return action;
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode });
  await rename(tmp, path);
  return action;
}

/** Start of a trailing block of link reference definitions (and blank lines) after the last heading. */
function footerStart(lines: string[], lastHeading: number): number {
  let start = lines.length;
  let links = 0;
  for (let i = lines.length - 1; i > lastHeading; i--) {
    const line = lines[i] ?? '';
    if (line.trim() === '') continue;
    if (!/^ {0,3}\[[^\]]+\]:\s*\S/.test(line)) break;
    links++;
    start = i;
  }
  return links > 0 ? start : lines.length;
}

/** Headings of level 1 and 2 outside fenced code blocks. */
function findHeadings(lines: string[]): Heading[] {
  const headings: Heading[] = [];
  let fence: string | undefined;
  lines.forEach((line, index) => {
    const marker = /^ {0,3}(`{3,}|~{3,})/.exec(line)?.[1];
    if (marker) {
      if (!fence) fence = marker;
      else if (marker[0] === fence[0] && marker.length >= fence.length && line.trim() === marker) fence = undefined;
      return;
    }
    if (fence) return;
    const level = /^(#{1,2})(?:[ \t]|$)/.exec(line)?.[1]?.length;
    if (level) headings.push({ index, level, token: level === 2 ? headingToken(line) : undefined });
  });
  return headings;
}

/** `## [v5.2.0](link) - 2024-06-01` -> `5.2.0`: the heading's first word up to a space, bracket or `:`. */
export function headingToken(line: string): string | undefined {
  const token = /^##[ \t]+\[?([^\s[\]():,]+)/.exec(line)?.[1];
  return token === undefined ? undefined : stripV(token);
}

function stripV(version: string): string {
  return /^v\d/.test(version) ? version.slice(1) : version;
}

function trimBlankEnd(lines: string[]): string[] {
  let end = lines.length;
  while (end > 0 && (lines[end - 1] ?? '').trim() === '') end--;
  return lines.slice(0, end);
}

/** Semantic version precedence: 5.2.0-rc.1 < 5.2.0 < 5.2.1 < 5.10.0. */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [core = '', ...pre] = v.split('+')[0]?.split('-') ?? [];
    return { core: core.split('.').map(Number), pre: pre.length > 0 ? pre.join('-').split('.') : [] };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) {
    const d = (x.core[i] ?? 0) - (y.core[i] ?? 0);
    if (d !== 0) return d;
  }
  if (x.pre.length === 0 || y.pre.length === 0) return y.pre.length - x.pre.length;
  for (let i = 0; i < Math.max(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i];
    const q = y.pre[i];
    if (p === undefined || q === undefined) return p === undefined ? -1 : 1;
    if (p === q) continue;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn) return Number(p) - Number(q);
    if (pn !== qn) return pn ? -1 : 1;
    return p < q ? -1 : 1;
  }
  return 0;
}
