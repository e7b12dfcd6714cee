/**
 * A throwaway root for running the provisioning scripts in integration tests without touching the
 * test host: the cached Debian tree (rootfs.ts) as the read-only lower layer of an overlay, this
 * sandbox's changes in its own upper directory, entered with `unshare --mount --pid --fork` (and
 * `--net` unless the command must reach the artifact server on the host's loopback) + chroot. See
 * enter.sh for what the root looks like. Each run() is like one boot of a machine: fresh /run,
 * fresh processes; the disk (upper dir and data image) persists between runs.
 *
 * Scripts run as the provisioner runs them: provision/ copied to <staging>/provision, the step's
 * planned files written where the plan says, then `bash <staging>/provision/<script>` with exactly
 * the step's environment.
 */
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { ProvisionStep } from '../../../src/definition/plan.js';
import type { ProvisionRootfs } from './rootfs.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../../..');
const ENTER = path.join(HERE, 'enter.sh');
const FAKES = path.join(HERE, 'bin');
const STANDINS_LOG = '/var/log/kiln-standins.jsonl';

export interface RunOptions {
  env?: Record<string, string>;
  /** 'host' shares the host's network (to reach the artifact server), with nft/ip/iptables
   * disabled; 'none' (default) is a private network namespace where nft really works. */
  network?: 'host' | 'none';
  /** Attach the data disk image as /dev/disk/by-id/virtio-<serial>. */
  dataDisk?: boolean;
  /** Run `mount -a` first, as a boot would. */
  mountAll?: boolean;
  timeoutMs?: number;
  /** Extra host directories, bound read-only under /run. */
  binds?: { host: string; guest: string }[];
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved. */
  all: string;
}

export interface StepRun extends RunResult {
  step: string;
  /** stdout of the `after` snippet, when one was given. */
  after?: string;
}

const AFTER_MARKER = '@@kiln-sandbox-after@@';

export class Sandbox {
  private constructor(
    readonly dir: string,
    readonly rootfs: ProvisionRootfs,
    /** Sparse disk image attached as the data disk (serial `dataSerial`). */
    readonly dataImage: string,
    readonly dataSerial: string,
  ) {}

  get upper(): string {
    return path.join(this.dir, 'upper');
  }

  /** A new sandbox in `dir` (created), with a blank data disk of `dataMiB`. */
  static async create(dir: string, rootfs: ProvisionRootfs, options: { dataMiB?: number; dataSerial?: string } = {}): Promise<Sandbox> {
    await mkdir(dir, { recursive: true });
    for (const sub of ['upper', 'work', 'merged']) await mkdir(path.join(dir, sub), { recursive: true });
    const dataImage = path.join(dir, 'data.img');
    await execa('truncate', ['-s', `${options.dataMiB ?? 256}M`, dataImage]);
    return new Sandbox(dir, rootfs, dataImage, options.dataSerial ?? 'kiln-data');
  }

  /** An existing sandbox directory made by create() or clone(). */
  static open(dir: string, rootfs: ProvisionRootfs, dataSerial = 'kiln-data'): Sandbox {
    return new Sandbox(dir, rootfs, path.join(dir, 'data.img'), dataSerial);
  }

  /** A copy of this sandbox (root changes and data disk) in `dir`: a machine to try something on. */
  async clone(dir: string, options: { withData?: boolean } = {}): Promise<Sandbox> {
    await mkdir(dir, { recursive: true });
    await execa('cp', ['-a', this.upper, path.join(dir, 'upper')]);
    await mkdir(path.join(dir, 'work'), { recursive: true });
    await mkdir(path.join(dir, 'merged'), { recursive: true });
    const dataImage = path.join(dir, 'data.img');
    if (options.withData ?? true) await execa('cp', ['--sparse=always', this.dataImage, dataImage]);
    else await execa('truncate', ['-s', '256M', dataImage]);
    return new Sandbox(dir, this.rootfs, dataImage, this.dataSerial);
  }

  /** A sandbox with this one's root and another sandbox's data disk (a root-volume swap). */
  async withDataOf(other: Sandbox, dir: string): Promise<Sandbox> {
    const copy = await this.clone(dir, { withData: false });
    await execa('cp', ['--sparse=always', other.dataImage, copy.dataImage]);
    return copy;
  }

  async run(command: string[], options: RunOptions = {}): Promise<RunResult> {
    const work = path.join(this.dir, 'work');
    // The overlay work dir must be empty and the merged dir unused for each mount.
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    const args = ['--mount', '--pid', '--fork', '--propagation', 'private'];
    if ((options.network ?? 'none') === 'none') args.push('--net');
    args.push('bash', ENTER, this.rootfs.root, this.upper, work, path.join(this.dir, 'merged'));
    args.push('--bind', `${FAKES}:/run/kiln-test/bin`, '--bind', `${path.join(REPO, 'provision')}:/run/kiln-src/provision`);
    for (const b of options.binds ?? []) args.push('--bind', `${b.host}:${b.guest}`);
    if (options.dataDisk ?? true) args.push('--data', `${this.dataImage}:${this.dataSerial}`);
    if (options.mountAll) args.push('--mount-all');
    if (options.network === 'host') args.push('--guard-net');
    args.push('--', ...command);
    const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8', TERM: 'dumb', ...options.env };
    const result = await execa('unshare', args, { env, extendEnv: false, reject: false, all: true, stripFinalNewline: false, timeout: options.timeoutMs ?? 300_000, stdin: 'ignore' });
    return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr), all: String(result.all) };
  }

  /** Runs a bash snippet (test plumbing, not a provisioning script). */
  async sh(script: string, options: RunOptions = {}): Promise<RunResult> {
    return this.run(['/bin/bash', '-euo', 'pipefail', '-c', script], options);
  }

  /** Like sh() but throws with the output when the snippet fails. */
  async check(script: string, options: RunOptions = {}): Promise<string> {
    const r = await this.sh(script, options);
    if (r.exitCode !== 0) throw new Error(`sandbox command failed (${r.exitCode}): ${script}\n${r.all}`);
    return r.stdout;
  }

  /** Runs one provisioning step as kiln would: scripts and planned files uploaded, then the script. */
  async runStep(step: ProvisionStep, options: RunOptions & { extraEnv?: Record<string, string>; after?: string } = {}): Promise<StepRun> {
    const files = await mkdtemp(path.join(this.dir, 'files-'));
    const installs: string[] = [];
    try {
      for (const [i, file] of step.files.entries()) {
        const local = path.join(files, String(i));
        if (file.content !== undefined) await writeFile(local, file.content);
        else if (file.source) await cp(path.resolve(REPO, file.source), local);
        else throw new Error(`planned file ${file.path} has neither content nor source`);
        installs.push(`install -D -m ${file.mode} /run/kiln-files/${i} '${file.path.replaceAll("'", "'\\''")}'`);
      }
      const staging = step.env.KILN_STAGING_DIR ?? '/var/tmp/kiln-build';
      const setup = [
        `mkdir -p ${staging} && rm -rf ${staging}/provision && cp -r /run/kiln-src/provision ${staging}/provision`,
        ...installs,
        options.after === undefined
          ? `exec bash ${staging}/provision/${step.script}`
          : `rc=0; bash ${staging}/provision/${step.script} || rc=$?\necho ${AFTER_MARKER}\n${options.after}\nexit $rc`,
      ].join('\n');
      // The step's environment only (plus PATH/HOME), as the SSH runner passes it.
      const env = { ...step.env, ...options.extraEnv, ...options.env };
      const result = await this.run(['/bin/bash', '-euo', 'pipefail', '-c', setup], {
        ...options,
        env,
        binds: [...(options.binds ?? []), { host: files, guest: '/run/kiln-files' }],
      });
      if (options.after === undefined) return { ...result, step: step.id };
      const cut = (text: string) => {
        const i = text.indexOf(`${AFTER_MARKER}\n`);
        return i < 0 ? [text, ''] : [text.slice(0, i), text.slice(i + AFTER_MARKER.length + 1)];
      };
      const [stdout, after] = cut(result.stdout);
      return { ...result, stdout: stdout ?? '', all: cut(result.all)[0] ?? '', after: after ?? '', step: step.id };
    } finally {
      await rm(files, { recursive: true, force: true });
    }
  }

  /**
   * What the scripts changed, as comparable text: for every file under `paths` (inside the root and
   * on the data volume, via `mount -a`), its type, mode, owner, size, mtime and sha256 or link
   * target. Two equal manifests mean nothing was rewritten, not even with the same content.
   */
  async manifest(paths: string[]): Promise<string> {
    return this.check(manifestScript(paths), { mountAll: true });
  }

  /** The JSON lines the stand-ins logged (all runs so far). */
  async standinLog(): Promise<Record<string, unknown>[]> {
    const text = await readFile(path.join(this.upper, STANDINS_LOG.slice(1)), 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** The JSON lines the sandbox's fake system tools logged. */
  async fakesLog(): Promise<{ tool: string; argv: string[] }[]> {
    const text = await readFile(path.join(this.upper, 'var/lib/kiln-test/fakes.jsonl'), 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as { tool: string; argv: string[] });
  }

  async dispose(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** The bash snippet behind Sandbox.manifest(). */
export function manifestScript(paths: string[]): string {
  return `for p in ${paths.map((p) => `'${p}'`).join(' ')}; do
  [ -e "$p" ] || { echo "absent $p"; continue; }
  find "$p" \\( -path /var/tmp/kiln-build -o -path '/var/log' -o -path /proc \\) -prune -o -printf '%p %y %m %U:%G %s %T@ %l\\n' | sort | while read -r f t rest; do
    if [ "$t" = f ]; then echo "$f $t $rest $(sha256sum "$f" | cut -c1-64)"; else echo "$f $t $rest"; fi
  done
done`;
}
