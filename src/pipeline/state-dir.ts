/**
 * Where a run keeps its durable state: `<state dir>/runs/<run id>/` holds the ledger, the run's
 * owner record, and per build its state, SSH key, full log and serial console.
 */
import { join } from 'node:path';

export const DEFAULT_STATE_DIR = '.kiln';

export function stateDir(): string {
  return process.env.KILN_STATE_DIR ?? DEFAULT_STATE_DIR;
}

export interface RunPaths {
  root: string;
  ledger: string;
  owner: string;
  manifest: string;
  build(buildId: string): BuildPaths;
}

export interface BuildPaths {
  root: string;
  state: string;
  sshKey: string;
  log: string;
  console: string;
  /** Scratch space for local files the build creates (overlays, seeds, exports in progress). */
  work: string;
}

export function runPaths(runId: string, base = stateDir()): RunPaths {
  const root = join(base, 'runs', runId);
  return {
    root,
    ledger: join(root, 'ledger.json'),
    owner: join(root, 'owner.json'),
    manifest: join(root, 'kiln-manifest.json'),
    build: (buildId) => {
      const dir = join(root, 'builds', buildId);
      return { root: dir, state: join(dir, 'state.json'), sshKey: join(dir, 'ssh_key'), log: join(dir, 'build.log'), console: join(dir, 'console.log'), work: join(dir, 'work') };
    },
  };
}
