import type { Command } from 'commander';
import { releaseNotes } from '../release/notes.js';
import type { Output } from './output.js';

export function registerRelease(program: Command, out: Output): void {
  const release = program.command('release').description('release steps that work from a run manifest');
  release
    .command('notes')
    .description('render Markdown release notes (image ids per size, target and region; versions; failed builds)')
    .argument('<manifest>', 'run manifest, e.g. merged from the shards with kiln manifest merge')
    .option('--changelog <file>', "put the notes into this changelog (replacing the version's section, or inserting it) instead of printing them")
    .option('--title <text>', 'words after the version in the heading: "## <version> - <text>"')
    .action(async (manifest: string, flags: { changelog?: string; title?: string }) => {
      const result = await releaseNotes({ manifest, changelog: flags.changelog, title: flags.title });
      if (result.changelog) out.line(`${result.changelog.path}: ${result.changelog.action} the section for ${result.version}`);
      else out.line(result.notes.trimEnd());
    });
}
