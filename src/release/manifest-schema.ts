/**
 * The run manifest (`kiln-manifest.json`) as a zod schema, and reading manifests given on the
 * command line: every problem is reported at once with the file, line, column and field, what was
 * expected and what was found (an InputError: exit 2). The shape is src/pipeline/manifest.ts's
 * `Manifest`; a compile-time check below keeps the two in step. docs/manifest.md explains the fields.
 *
 * Versioning: additions keep `manifestVersion`, changes bump it. So a reader accepts fields it does
 * not know (a newer kiln added them) and refuses a version it does not know. Readers get the JSON
 * as it was written, unknown fields included, so `kiln manifest merge` passes them on.
 */
import { readFile } from 'node:fs/promises';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { z } from 'zod';
import { InputError, type InputIssue } from '../core/errors.js';
import { formatPath } from '../definition/load.js';
import { RUN_ID } from '../definition/names.js';
import type { PipelineStepName } from '../definition/plan.js';
import { SIZES, TARGETS } from '../definition/schema.js';
import { PRODUCT_VERSION, SHA256 } from '../definition/values.js';
import { MANIFEST_VERSION, type Manifest } from '../pipeline/manifest.js';

export const STEP_NAMES = ['prepare', 'launch', 'connect', 'provision', 'stop', 'capture', 'validate', 'publish'] as const satisfies readonly PipelineStepName[];
export const BUILD_STATUSES = ['succeeded', 'failed', 'interrupted', 'running', 'pending'] as const;

const text = z.string().min(1, 'a non-empty string');
const timestamp = z.iso.datetime({ offset: true, error: 'an ISO 8601 time like 2024-06-01T12:00:00.000Z' });
const sha256 = z.string().regex(SHA256, 'a sha256 digest (64 lowercase hex digits)');

export const artifactSchema = z.object({
  kind: text,
  id: text,
  name: text.optional(),
  region: text.optional(),
  disk: z.enum(['root', 'data', 'both']).optional(),
  format: text.optional(),
  path: text.optional(),
  sizeBytes: z.number().int().nonnegative().optional(),
  sha256: sha256.optional(),
});

export const manifestBuildSchema = z.object({
  buildId: text,
  target: z.enum(TARGETS),
  size: z.enum(SIZES),
  version: z.string().regex(PRODUCT_VERSION, 'a product version like 5.2.0'),
  status: z.enum(BUILD_STATUSES),
  error: z.object({ code: text, message: z.string(), step: z.enum(STEP_NAMES).optional() }).optional(),
  sourceImage: text.optional(),
  k3sVersion: text,
  helmVersion: text,
  charts: z.array(z.object({ release: text, chart: text, version: text })),
  artifacts: z.array(artifactSchema),
  timingsMs: z.record(z.string(), z.number().nonnegative()),
  leftovers: z.array(z.object({ kind: text, id: text.optional(), name: z.string(), region: text.optional() })),
  validation: z.object({ passed: z.boolean(), checks: z.array(z.object({ name: text, passed: z.boolean(), output: z.string() })) }).optional(),
});

export const manifestSchema = z.object({
  manifestVersion: z.literal(MANIFEST_VERSION),
  runId: z.string().regex(RUN_ID, 'a kiln run id (lowercase letters and digits, 6-16 characters, starting with a letter)'),
  definition: z.object({ name: text, path: text, sha256 }),
  version: z.string().regex(PRODUCT_VERSION, 'a product version like 5.2.0'),
  startedAt: timestamp,
  updatedAt: timestamp,
  builds: z.array(manifestBuildSchema),
});

// The schema and the writer's types describe the same shape: each must fit the other, or this fails
// to compile. A field added to Manifest without the schema (or the reverse) breaks the build here.
type Parsed = z.output<typeof manifestSchema>;
type Assert<T extends true> = T;
export type SchemaMatchesManifest = Assert<Parsed extends Manifest ? (Manifest extends Parsed ? true : false) : false>;

/** Reads and validates a manifest file; throws an InputError naming the file for anything wrong. */
export async function readManifest(file: string): Promise<Manifest> {
  let content: string;
  try {
    content = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (err as Error).message;
    throw new InputError({ file, message: `cannot read manifest: ${reason}` });
  }
  return parseManifest(content, file);
}

/** Validates manifest JSON text. Returns the JSON as written (unknown, newer fields kept). */
export function parseManifest(content: string, file: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(content);
  } catch (err) {
    throw new InputError({ file, ...syntaxPosition(content, err as Error), message: `expected a JSON manifest, found invalid JSON: ${jsonReason(err as Error)}` });
  }
  const locate = locator(content);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InputError({ file, line: 1, column: 1, message: `expected a JSON object (a kiln manifest), found ${describeValue(raw)}` });
  }
  const version = (raw as Record<string, unknown>).manifestVersion;
  if (typeof version === 'number' && version !== MANIFEST_VERSION) {
    const why = version > MANIFEST_VERSION ? 'written by a newer kiln: upgrade kiln to read it' : 'an older format this kiln no longer reads';
    throw new InputError({ file, ...locate(['manifestVersion']), field: 'manifestVersion', message: `expected ${MANIFEST_VERSION}, found ${version} (${why}; see docs/manifest.md)` });
  }
  const parsed = manifestSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    const issues: InputIssue[] = parsed.error.issues.map((issue) => ({ file, ...locate(issue.path), field: formatPath(issue.path) || undefined, message: expectedFound(issue) }));
    throw new InputError(issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0)));
  }
  return raw as Manifest;
}

function expectedFound(issue: z.core.$ZodIssue): string {
  const found = 'input' in issue ? describeValue(issue.input) : undefined;
  if (issue.code === 'invalid_type') {
    return found === 'nothing' ? `required: expected ${issue.expected}, found nothing` : `expected ${issue.expected}, found ${found}`;
  }
  if (issue.code === 'invalid_value') return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, found ${found}`;
  if (issue.code === 'too_small' || issue.code === 'too_big') {
    const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
    const op = issue.code === 'too_small' ? (issue.inclusive ? '>=' : '>') : issue.inclusive ? '<=' : '<';
    const expected = issue.origin === 'string' && issue.code === 'too_small' && bound === 1 ? 'a non-empty string' : issue.origin === 'number' ? `a number ${op} ${String(bound)}` : `${issue.origin} of length ${op} ${String(bound)}`;
    return `expected ${expected}, found ${found}`;
  }
  const expected = issue.message.replace(/^Invalid input:?\s*/i, '');
  return found === undefined ? `expected ${expected}` : `expected ${expected}, found ${found}`;
}

export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

function jsonReason(err: Error): string {
  return err.message.replace(/\s*\(line \d+ column \d+\)/, '').replace(/\s+in JSON at position \d+.*$/, '');
}

/** Where JSON.parse stopped: V8 says "at position N"; an empty or truncated file ends at its end. */
function syntaxPosition(content: string, err: Error): Pick<InputIssue, 'line' | 'column'> {
  const match = /at position (\d+)/.exec(err.message);
  const offset = match ? Number(match[1]) : content.length;
  const before = content.slice(0, offset).split('\n');
  return { line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}

/** Line and column of the deepest node along a field path, found by reading the JSON as YAML 1.2. */
function locator(content: string): (path: readonly PropertyKey[]) => Pick<InputIssue, 'line' | 'column'> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(content, { lineCounter });
  return (path) => {
    let node: unknown = doc.contents;
    let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
    for (const part of path) {
      if (isMap(node)) {
        const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(part));
        if (!pair) break;
        offset = (pair.key as Node).range?.[0] ?? offset;
        node = pair.value;
      } else if (isSeq(node) && typeof part === 'number') {
        node = node.items[part];
        if (!node) break;
      } else {
        break;
      }
      if (isScalar(node) || isMap(node) || isSeq(node)) offset = (node as Node).range?.[0] ?? offset;
    }
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
}
