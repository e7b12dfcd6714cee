/** The release tests' fixture: a realistic run of sourcegraph 5.2.0 (4 targets, 3 AWS regions, one failed build). */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Manifest } from '../../../src/pipeline/manifest.js';

export const FIXTURE = 'test/unit/release/fixtures/sourcegraph-5.2.0.json';
export const GOLDEN = 'test/unit/release/golden';

/** A fresh deep copy of the fixture, to change in a test. */
export function fixture(): Manifest {
  return JSON.parse(readFileSync(FIXTURE, 'utf8')) as Manifest;
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'kiln-release-'));
}

export function writeJson(dir: string, name: string, value: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
  return path;
}
