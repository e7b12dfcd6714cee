/**
 * Writes images/schema.json from the zod schema (the single source of truth), so editors complete
 * and validate definitions. With --check, fails if the committed file is not current.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { definitionSchema } from '../src/definition/schema.js';

const target = new URL('../images/schema.json', import.meta.url);

export function definitionJsonSchema(): string {
  const schema = z.toJSONSchema(definitionSchema, { io: 'input', unrepresentable: 'any' });
  const document = { ...schema, $id: 'https://kiln.dev/schema/definition.json', title: 'kiln image definition' };
  return `${JSON.stringify(document, null, 2)}\n`;
}

const expected = definitionJsonSchema();
if (process.argv.includes('--check')) {
  const current = await readFile(target, 'utf8').catch(() => '');
  if (current !== expected) {
    console.error('images/schema.json is out of date with src/definition/schema.ts: run `npm run schema` and commit it.');
    process.exit(1);
  }
  console.log('images/schema.json is current');
} else {
  await writeFile(target, expected);
  console.log('wrote images/schema.json');
}
