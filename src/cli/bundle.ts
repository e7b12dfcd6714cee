import type { Command } from 'commander';
import { join } from 'node:path';
import { InputError } from '../core/errors.js';
import { makeBundle, verifyBundle, type BundleArtifact } from '../bundle/index.js';
import { defaultCacheDir } from '../targets/local/driver.js';
import { collectMirrors, mirrorOption } from './options.js';
import type { Output } from './output.js';
import { onInterrupt } from './signals.js';

interface BundleFlags {
  version?: string;
  output?: string;
  target?: string;
  size?: string;
  mirror: string[];
  cacheDir?: string;
}

export function registerBundle(program: Command, out: Output): void {
  const bundle = program
    .command('bundle')
    .description('download every artifact a build needs (K3s, Helm, charts, container images), verified, into one archive for air-gapped builds')
    .argument('<definition>', 'image definition (YAML)')
    // Not requiredOption: commander would demand them of `kiln bundle verify` too.
    .option('-V, --version <version>', 'product version, e.g. 5.2.0 (required)')
    .option('-o, --output <file>', 'the bundle to write, e.g. bundle.tar (required)')
    .option('-t, --target <target>', 'target whose plan to bundle (default: the first defined; the artifacts are the same for all)')
    .option('-s, --size <size>', 'size whose plan to bundle (default: the first defined)')
    .option(...mirrorOption)
    .option('--cache-dir <dir>', 'where verified downloads are kept for the next run (default: $KILN_CACHE_DIR/bundle)')
    .action(async (path: string, flags: BundleFlags) => {
      if (!flags.version) throw new InputError({ field: '--version', message: 'required: the product version to bundle, e.g. --version 5.2.0' });
      if (!flags.output) throw new InputError({ field: '--output', message: 'required: the bundle file to write, e.g. -o bundle.tar' });
      const interrupt = onInterrupt({ first: () => out.error('interrupted: stopping the downloads'), second: () => out.error('stopped') });
      try {
        const made = await makeBundle({
          definition: path,
          version: flags.version,
          output: flags.output,
          target: flags.target,
          size: flags.size,
          mirrors: collectMirrors(flags.mirror),
          cacheDir: flags.cacheDir ?? join(defaultCacheDir(), 'bundle'),
          log: (line) => out.line(line),
          signal: interrupt.signal,
        });
        printArtifacts(made.manifest.artifacts, out);
        out.line(`${made.path}: ${made.manifest.artifacts.length} artifacts, ${made.size} bytes, sha256 ${made.sha256} (${made.downloaded} downloaded, ${made.reused} from the cache)`);
      } finally {
        interrupt.dispose();
      }
    });

  bundle
    .command('verify')
    .description('check a bundle offline: every artifact present with the size and sha256 its manifest lists, nothing else')
    .argument('<bundle>', 'the bundle file')
    .action(async (file: string) => {
      const verified = await verifyBundle(file);
      printArtifacts(verified.manifest.artifacts, out);
      out.line(`${file}: ok, ${verified.manifest.artifacts.length} artifacts for ${verified.manifest.definition.name} ${verified.manifest.version}, manifest sha256 ${verified.manifestSha256}`);
    });
}

function printArtifacts(artifacts: BundleArtifact[], out: Output): void {
  for (const a of artifacts) out.line(`  ${a.sha256.slice(0, 12)}  ${String(a.size).padStart(12)}  ${a.path}`);
}
