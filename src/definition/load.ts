/**
 * Loading a definition: read the YAML (merge keys allowed, so sizes can share anchors), validate it
 * against the schema and the cross-field rules, and report every problem at once with the file,
 * line, column, field path, what was expected and what was found.
 */
import { access, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createHash, X509Certificate } from 'node:crypto';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { core } from 'zod';
import { InputError, type InputIssue } from '../core/errors.js';
import { definitionSchema, type Definition } from './schema.js';
import { crossFieldIssues } from './rules.js';

export interface LoadedDefinition {
  definition: Definition;
  /** The path as given, used in messages and recorded in plans. */
  path: string;
  /** sha256 of the file's bytes, recorded in plans and manifests. */
  sha256: string;
}

export async function loadDefinition(path: string): Promise<LoadedDefinition> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new InputError({ file: path, message: `cannot read definition: ${reason}` });
  }
  const definition = parseDefinition(text, path);
  await checkReferencedFiles(definition, path, text);
  return { definition, path, sha256: createHash('sha256').update(text).digest('hex') };
}

/** Values files and certificates are read at build time: make sure they exist now. */
async function checkReferencedFiles(definition: Definition, file: string, text: string): Promise<void> {
  const references: { path: PropertyKey[]; relative: string; certificate?: boolean }[] = [];
  for (const [size, spec] of Object.entries(definition.sizes)) {
    for (const [release, files] of Object.entries(spec?.values ?? {})) {
      files.forEach((relative, i) => references.push({ path: ['sizes', size, 'values', release, i], relative }));
    }
  }
  const caFile = definition.k3s.registryMirror?.caFile;
  if (caFile) references.push({ path: ['k3s', 'registryMirror', 'caFile'], relative: caFile, certificate: true });
  const missing: InputIssue[] = [];
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, merge: true });
  for (const ref of references) {
    const full = join(dirname(file), ref.relative);
    const at = { file, ...position(doc, lineCounter, ref.path), field: formatPath(ref.path) };
    try {
      await access(full);
    } catch {
      missing.push({ ...at, message: `file not found: ${full}` });
      continue;
    }
    const problem = ref.certificate ? await certificateProblem(full) : undefined;
    if (problem) missing.push({ ...at, message: `expected a PEM certificate (-----BEGIN CERTIFICATE-----) in ${full}, found ${problem}` });
  }
  if (missing.length > 0) throw new InputError(missing);
}

/** Why a file is not a PEM certificate K3s could trust, or undefined when it is one. */
async function certificateProblem(path: string): Promise<string | undefined> {
  const text = await readFile(path, 'utf8').catch((err: Error) => `an unreadable file (${err.message})`);
  if (!text.includes('-----BEGIN CERTIFICATE-----')) return text.startsWith('an unreadable file') ? text : 'no certificate';
  try {
    new X509Certificate(text);
    return undefined;
  } catch (err) {
    return `a certificate that does not parse (${(err as Error).message})`;
  }
}

/** Parses and validates definition text; throws an InputError listing every problem. */
export function parseDefinition(text: string, file: string): Definition {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, merge: true, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new InputError(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return { file, line: pos?.line, column: pos?.col, message: `YAML: ${(e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}` };
      }),
    );
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 1000 });
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InputError({ file, line: 1, column: 1, message: 'expected a mapping at the top of the definition' });
  }
  const locate = (path: PropertyKey[], at: 'key' | 'value' = 'value') => position(doc, lineCounter, path, at);
  const parsed = definitionSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    throw new InputError(parsed.error.issues.flatMap((issue) => describeIssue(issue, file, locate)));
  }
  const problems = crossFieldIssues(parsed.data);
  if (problems.length > 0) {
    throw new InputError(problems.map((p) => ({ file, ...locate(p.path), field: formatPath(p.path), message: p.message })));
  }
  return parsed.data;
}

type Locate = (path: PropertyKey[], at?: 'key' | 'value') => Pick<InputIssue, 'line' | 'column'>;

function describeIssue(issue: core.$ZodIssue, file: string, locate: Locate): InputIssue[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const path = [...issue.path, key];
      return { file, ...locate(path, 'key'), field: formatPath(path), message: `unknown key "${key}" (check its spelling; see images/schema.json)` };
    });
  }
  if (issue.code === 'invalid_union') {
    // A union failed on every branch: its deepest branch errors are the useful ones.
    const branches = issue.errors.map((branch) => branch.flatMap((inner) => describeIssue({ ...inner, path: [...issue.path, ...inner.path] }, file, locate)));
    const best = branches.sort((a, b) => a.length - b.length)[0];
    if (best && best.length > 0) return best;
  }
  return [{ file, ...locate(issue.path), field: formatPath(issue.path) || undefined, message: expectedFound(issue) }];
}

function expectedFound(issue: core.$ZodIssue): string {
  const found = 'input' in issue ? describeValue(issue.input) : undefined;
  if (issue.code === 'invalid_type') {
    return found === 'nothing' ? `required: expected ${issue.expected}, found nothing` : `expected ${issue.expected}, found ${found}`;
  }
  if (issue.code === 'invalid_value') {
    return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, found ${found}`;
  }
  const expected = issue.message.replace(/^Invalid input:?\s*/i, '');
  return found === undefined ? `expected ${expected}` : `expected ${expected}, found ${found}`;
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${String(value)}`;
}

/** `sizes.XS.values["sourcegraph"][0]`: dotted where a key is a plain word, bracketed otherwise. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(String(part))) out += out ? `.${String(part)}` : String(part);
    else out += `[${JSON.stringify(String(part))}]`;
  }
  return out;
}

/**
 * Line and column of the deepest node that exists along `path`: its value, or with at='key' the key
 * of the last step (where an unknown key is).
 */
function position(doc: Document, lineCounter: LineCounter, path: readonly PropertyKey[], at: 'key' | 'value' = 'value'): Pick<InputIssue, 'line' | 'column'> {
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
  for (const [index, part] of path.entries()) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(part));
      if (!pair) break;
      const keyNode = pair.key as Node;
      offset = keyNode.range?.[0] ?? offset;
      if (at === 'key' && index === path.length - 1) break;
      node = pair.value;
      if (isScalar(node) || isMap(node) || isSeq(node)) offset = (node as Node).range?.[0] ?? offset;
    } else if (isSeq(node) && typeof part === 'number') {
      const item = node.items[part];
      if (!item) break;
      node = item;
      offset = (item as Node).range?.[0] ?? offset;
    } else {
      break;
    }
  }
  const { line, col } = lineCounter.linePos(offset);
  return { line, column: col };
}
