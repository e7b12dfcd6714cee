/**
 * `kiln bundle verify`, and the check `kiln build --bundle` makes before launching anything: read
 * the bundle once as a stream, hash every entry, and compare with the manifest: every artifact
 * present once with its size and sha256, nothing else in the archive. Works offline.
 */
import { stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { InputError, KilnError } from '../core/errors.js';
import { MANIFEST_NAME, manifestSchema, type BundleManifest } from './manifest.js';
import { readTar, type ReadEntry } from './tar-files.js';

export interface VerifiedBundle {
  path: string;
  manifest: BundleManifest;
  /** sha256 of kiln-bundle.json as stored: what the build VM checks its copy against. */
  manifestSha256: string;
  size: number;
}

export async function verifyBundle(file: string, signal?: AbortSignal): Promise<VerifiedBundle> {
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) throw new InputError({ file, message: 'cannot read the bundle: no such file' });
  const entries: ReadEntry[] = [];
  try {
    await readTar(file, { keep: (name) => name === MANIFEST_NAME, onEntry: (entry) => entries.push(entry), signal });
  } catch (err) {
    if (signal?.aborted) throw new KilnError('INTERRUPTED', `verifying ${file} interrupted`);
    throw new InputError({ file, message: `not a kiln bundle: cannot read it as a tar archive (${(err as Error).message})` });
  }
  const manifestEntry = entries.find((e) => e.name === MANIFEST_NAME);
  if (!manifestEntry?.content) throw new InputError({ file, message: `not a kiln bundle: it has no ${MANIFEST_NAME}` });
  const manifest = parseManifest(file, manifestEntry.content);

  const problems: string[] = [];
  const seen = new Map<string, number>();
  for (const entry of entries) seen.set(entry.name, (seen.get(entry.name) ?? 0) + 1);
  for (const [name, count] of seen) if (count > 1) problems.push(`${name} appears ${count} times in the archive`);
  const listed = new Set([MANIFEST_NAME, ...manifest.artifacts.map((a) => a.path)]);
  for (const entry of entries) {
    if (!listed.has(entry.name)) problems.push(`${entry.name} is in the archive but not in ${MANIFEST_NAME}`);
    else if (entry.type !== 'file') problems.push(`${entry.name} is a ${entry.type}, not a file`);
  }
  for (const artifact of manifest.artifacts) {
    const entry = entries.find((e) => e.name === artifact.path);
    const label = `artifact ${artifact.path} (${artifact.name})`;
    if (!entry) problems.push(`${label} is missing`);
    else if (entry.size !== artifact.size) problems.push(`${label} has ${entry.size} bytes, the manifest says ${artifact.size}`);
    else if (entry.sha256 !== artifact.sha256) problems.push(`${label} has sha256 ${entry.sha256}, the manifest says ${artifact.sha256}`);
  }
  if (problems.length > 0) {
    throw new KilnError('INTEGRITY', `bundle ${file} is damaged or was tampered with:\n  ${problems.join('\n  ')}`, { bundle: file });
  }
  return { path: file, manifest, manifestSha256: createHash('sha256').update(manifestEntry.content).digest('hex'), size: info.size };
}

function parseManifest(file: string, content: Buffer): BundleManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(content.toString('utf8'));
  } catch (err) {
    throw new InputError({ file, field: MANIFEST_NAME, message: `expected JSON, found ${(err as Error).message}` });
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    throw new InputError(parsed.error.issues.map((issue) => ({ file, field: `${MANIFEST_NAME} ${issue.path.join('.')}`.trim(), message: issue.message })));
  }
  return parsed.data;
}
