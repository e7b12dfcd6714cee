/**
 * A real OpenSSH sshd for tests and benchmarks: `/usr/sbin/sshd -D -e -f <config>` on 127.0.0.1 with
 * an ephemeral port, its own ed25519 host key and authorized_keys in a temp dir. Logs in as the
 * current user (root: `PermitRootLogin prohibit-password`). Needs openssh-server and ssh-keygen.
 *
 * `stop()` ends the listener and every session it serves; `killSessions()` drops only the sessions
 * (as a network failure would); `restart()` starts again on the same port with the same host key.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { done, notYet, waitFor } from '../../src/core/wait.js';

export interface TestSshd {
  host: string;
  port: number;
  /** `ssh-ed25519 AAAA...` line of the server's host key. */
  hostPublicKey: string;
  user: string;
  /** The temp dir holding config, keys and logs. */
  dir: string;
  /** Everything sshd printed (with -e its log goes to stderr). */
  log(): string;
  /** Replaces authorized_keys (sshd reads it at every login). */
  authorize(publicKeys: string[]): void;
  /** Kills every per-connection sshd process and what runs under it; the listener stays. */
  killSessions(): number;
  stop(): Promise<void>;
  restart(): Promise<void>;
  /** stop() and remove the temp dir. */
  dispose(): Promise<void>;
}

export interface TestSshdOptions {
  authorizedKeys?: string[];
  /** Use this port (e.g. one reserved by freePort()); default: a free one. */
  port?: number;
  /** Do not start yet: call restart() to start. */
  deferStart?: boolean;
}

const SSHD = '/usr/sbin/sshd';

/** The connection fields of an SSH client config for this server (host, port, user, host key). */
export function loginFor(sshd: TestSshd): { host: string; port: number; username: string; hostKeys: string[] } {
  return { host: sshd.host, port: sshd.port, username: sshd.user, hostKeys: [sshd.hostPublicKey] };
}

/** A port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startSshd(options: TestSshdOptions = {}): Promise<TestSshd> {
  try {
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation dir
  } catch {
    // not root: sshd runs without privilege separation's chroot, and says so if it minds
  }
  const dir = mkdtempSync(join(tmpdir(), 'kiln-sshd-'));
  const hostKeyPath = join(dir, 'ssh_host_ed25519_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kiln-test-host', '-f', hostKeyPath]);
  const hostPublicKey = readFileSync(`${hostKeyPath}.pub`, 'utf8').trim();
  const authorizedKeysPath = join(dir, 'authorized_keys');
  // Written aside and renamed into place: sshd may be reading the file for a login at that moment.
  const authorize = (keys: string[]): void => {
    writeFileSync(`${authorizedKeysPath}.new`, keys.map((k) => `${k}\n`).join(''), { mode: 0o600 });
    renameSync(`${authorizedKeysPath}.new`, authorizedKeysPath);
  };
  authorize(options.authorizedKeys ?? []);

  const port = options.port ?? (await freePort());
  const user = userInfo().username;
  const configPath = join(dir, 'sshd_config');
  writeFileSync(
    configPath,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKeyPath}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorizedKeysPath}`,
      'StrictModes no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      `AllowUsers ${user}`,
      'Subsystem sftp internal-sftp',
      'MaxStartups 100',
      'MaxSessions 100',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );

  let child: ChildProcess | undefined;
  let logText = '';

  const start = async (): Promise<void> => {
    const proc = spawn(SSHD, ['-D', '-e', '-f', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    let exited: string | undefined;
    proc.stderr?.on('data', (chunk: Buffer) => (logText += chunk.toString()));
    proc.once('exit', (code, signal) => (exited = `sshd exited (code ${code}, signal ${signal})`));
    proc.once('error', (err) => (exited = `sshd failed to start: ${err.message}`));
    await waitFor(
      async () => {
        if (exited) throw new Error(`${exited}\n${logText}`);
        return (await sshBanner(port)) ? done(undefined) : notYet('no SSH banner yet');
      },
      { what: `test sshd on 127.0.0.1:${port}`, timeoutMs: 15_000, initialDelayMs: 10, maxDelayMs: 100 },
    );
  };

  const killSessions = (): number => {
    const pid = child?.pid;
    if (!pid) return 0;
    const victims = descendants(pid);
    for (const victim of victims) {
      try {
        process.kill(victim, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    return victims.length;
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc?.pid || proc.exitCode !== null || proc.signalCode !== null) return;
    const victims = descendants(proc.pid);
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGKILL');
    for (const victim of victims) {
      try {
        process.kill(victim, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await exited;
  };

  if (!options.deferStart) await start();

  return {
    host: '127.0.0.1',
    port,
    hostPublicKey,
    user,
    dir,
    log: () => logText,
    authorize,
    killSessions,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    dispose: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** True when something on 127.0.0.1:port answers with an SSH identification line. */
async function sshBanner(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    let data = '';
    const finish = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2_000, () => finish(false));
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      if (data.includes('\n')) finish(data.startsWith('SSH-2.0-'));
    });
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
  });
}

/** Every process below `pid`, children first found by walking /proc. */
function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(fields[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(entry));
      parents.set(ppid, list);
    } catch {
      // the process ended while we looked
    }
  }
  const out: number[] = [];
  const queue = [...(parents.get(pid) ?? [])];
  while (queue.length > 0) {
    const next = queue.shift() as number;
    out.push(next);
    queue.push(...(parents.get(next) ?? []));
  }
  return out;
}
