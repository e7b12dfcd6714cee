import type { Command } from 'commander';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, type InputIssue } from '../core/errors.js';
import { loadDefinition } from '../definition/load.js';
import type { Output } from './output.js';

export function registerCheck(program: Command, out: Output): void {
  program
    .command('check')
    .description('validate definitions (default: every *.yaml under images/)')
    .argument('[definitions...]', 'definition files')
    .action(async (paths: string[]) => {
      const files = paths.length > 0 ? paths : await definitionsIn('images');
      const issues: InputIssue[] = [];
      for (const file of files) {
        try {
          await loadDefinition(file);
          out.line(`ok      ${file}`);
        } catch (err) {
          if (!(err instanceof InputError)) throw err;
          out.line(`invalid ${file}`);
          issues.push(...err.issues);
        }
      }
      if (issues.length > 0) throw new InputError(issues);
    });
}

async function definitionsIn(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    throw new InputError({ file: dir, message: 'no definitions given and no images/ folder here' });
  }
  const files = names.filter((n) => /\.ya?ml$/.test(n)).sort().map((n) => join(dir, n));
  if (files.length === 0) throw new InputError({ file: dir, message: 'no *.yaml definitions found' });
  return files;
}
