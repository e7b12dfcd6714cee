import type { Command } from 'commander';
import { mergeManifestFiles } from '../release/merge.js';
import type { Output } from './output.js';

export function registerManifest(program: Command, out: Output): void {
  const manifest = program.command('manifest').description('work with run manifests (kiln-manifest.json; see docs/manifest.md)');
  manifest
    .command('merge')
    .description('join the shard manifests of one run (same run id, definition and version) into one, sorted by target then size')
    .argument('<out>', 'where to write the merged manifest (written atomically)')
    .argument('<manifest...>', 'shard manifests, e.g. from kiln build --shard i/n')
    .action(async (outPath: string, files: string[]) => {
      const { manifest: merged, duplicates } = await mergeManifestFiles(outPath, files);
      const failed = merged.builds.filter((b) => b.status !== 'succeeded').length;
      const note = duplicates.length > 0 ? `; ${duplicates.length} build(s) appeared twice, identically` : '';
      out.line(`${outPath}: run ${merged.runId}, ${merged.builds.length} build(s) from ${files.length} manifest(s), ${failed} not succeeded${note}`);
    });
}
