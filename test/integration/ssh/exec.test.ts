import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KilnError } from '../../../src/core/errors.js';
import { done, notYet, waitFor } from '../../../src/core/wait.js';
import { generateKeyPair, isDisconnected, secret, SshSession } from '../../../src/ssh/index.js';
import { loginFor, startSshd, type TestSshd } from '../../support/sshd.js';

const key = generateKeyPair();
const scratch = join(tmpdir(), `kiln-exec-${randomBytes(4).toString('hex')}`);
const logs: string[] = [];
let sshd: TestSshd;
let session: SshSession;

beforeAll(async () => {
  mkdirSync(scratch, { recursive: true });
  sshd = await startSshd({ authorizedKeys: [key.publicKey] });
  session = await SshSession.connect({ ...loginFor(sshd), privateKey: key.privateKey, timeoutMs: 10_000, onLog: (l) => logs.push(l) });
});
afterAll(async () => {
  session?.close();
  await sshd?.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

async function failure(promise: Promise<unknown>): Promise<KilnError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KilnError);
  return err as KilnError;
}

describe('ssh exec', () => {
  it('passes env values with shell metacharacters verbatim, through sudo, and runs none of them', async () => {
    const canary = join(scratch, 'canary');
    const values: Record<string, string> = {
      VERSION: '5.0.0; rm -rf /',
      SUBST: `$(touch ${canary})`,
      BACKTICK: `\`touch ${canary}\``,
      QUOTES: `'; touch ${canary}; echo '"\\`,
      NEWLINES: `a\nb\n; touch ${canary}\n`,
      DASH: '--help',
      GLOB: '*',
      EMPTY: '',
      UNICODE: 'ünïcødé ✓ \t tab',
      DOLLAR: '$HOME ${PATH} $$ $1',
    };
    const names = Object.keys(values);
    for (const sudo of [false, true]) {
      const lines: string[] = [];
      const result = await session.run(`id -u; for n in ${names.join(' ')}; do printf '%s' "\${!n}" | base64 -w0; echo; done`, {
        sudo,
        env: values,
        onLine: (_stream, line) => lines.push(line),
      });
      expect(result.code).toBe(0);
      if (sudo) expect(lines[0]).toBe('0');
      const received = Object.fromEntries(names.map((name, i) => [name, Buffer.from(lines[i + 1] ?? '', 'base64').toString('utf8')]));
      expect(received).toEqual(values);
    }
    expect(existsSync(canary)).toBe(false);
  });

  it('runs in the given working directory, whatever its name', async () => {
    const odd = join(scratch, "dir with 'quotes' and $(x)");
    mkdirSync(odd);
    const result = await session.run('pwd', { cwd: odd, onLine: () => {} });
    expect(result.stdoutTail).toBe(odd);
  });

  it('streams stdout and stderr line by line, in order', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const result = await session.exec('for i in $(seq 1 3000); do echo "out $i"; done; echo "to stderr" >&2; printf "no newline ü"', {
      onLine: (stream, line) => (stream === 'stdout' ? out : err).push(line),
    });
    expect(result.code).toBe(0);
    expect(out.slice(0, 3000)).toEqual(Array.from({ length: 3000 }, (_, i) => `out ${i + 1}`));
    expect(out[3000]).toBe('no newline ü');
    expect(out).toHaveLength(3001);
    expect(err).toEqual(['to stderr']);
    expect(result.stderrTail).toBe('to stderr');
  });

  it('returns the exit code from exec, and run() throws with the last 20 lines', async () => {
    expect((await session.exec('exit 3', { onLine: () => {} })).code).toBe(3);
    const err = await failure(session.run('for i in $(seq 1 50); do echo "line $i"; done; echo boom >&2; exit 7', { onLine: () => {} }));
    expect(err.code).toBe('SSH');
    expect(err.context.exitCode).toBe(7);
    expect(err.message).toContain('exited with code 7');
    expect(err.message).toMatch(/^line 32$/m);
    expect(err.message).toMatch(/^line 50$/m);
    expect(err.message).toMatch(/^! boom$/m);
    expect(err.message).not.toMatch(/^line 31$/m);
  });

  it('never shows a secret value in logs, lines or errors, but the command gets it', async () => {
    const value = `s3cr3t-${randomBytes(6).toString('hex')}`;
    const lines: string[] = [];
    logs.length = 0;
    const err = await failure(
      session.run('printf "%s" "$TOKEN" | sha256sum; echo "token is $TOKEN"; exit 1', {
        env: { TOKEN: secret(value), PLAIN: 'visible' },
        onLine: (_s, line) => lines.push(line),
      }),
    );
    expect(lines[0]?.split(' ')[0]).toBe(createHash('sha256').update(value).digest('hex'));
    expect(lines[1]).toBe('token is ***');
    expect(err.message).toContain('token is ***');
    const everything = [err.message, JSON.stringify(err.context), ...lines, ...logs].join('\n');
    expect(everything).not.toContain(value);
    expect(logs.join('\n')).toContain("TOKEN=*** PLAIN='visible'");
  });

  it('kills a command that passes its deadline and throws TIMEOUT', async () => {
    for (const sudo of [false, true]) {
      const pidFile = join(scratch, `sleeper-${sudo}`);
      const started = Date.now();
      const err = await failure(session.exec(`echo $$ > '${pidFile}'; exec sleep 300`, { sudo, timeoutMs: 1_000, onLine: () => {} }));
      expect(err.code).toBe('TIMEOUT');
      expect(err.message).toContain('timed out after 1s');
      expect(Date.now() - started).toBeLessThan(10_000);
      const pid = Number(readFileSync(pidFile, 'utf8'));
      expect(pid).toBeGreaterThan(1);
      // The sleep is gone (or a zombie waiting to be reaped), not still sleeping.
      await waitFor(async () => (alive(pid) ? notYet(`pid ${pid} alive`) : done(true)), { what: `pid ${pid} to die`, timeoutMs: 5_000, initialDelayMs: 20 });
    }
    expect((await session.run('echo still usable', { onLine: () => {} })).stdoutTail).toBe('still usable');
  });

  it('stops a command when its signal aborts', async () => {
    const controller = new AbortController();
    const running = session.exec('echo started; exec sleep 300', {
      signal: controller.signal,
      onLine: (_s, line) => {
        if (line === 'started') controller.abort();
      },
    });
    const err = await failure(running);
    expect(err.code).toBe('INTERRUPTED');
  });
});

describe('ssh exec on a dropped connection', () => {
  it('reports the drop as a disconnect, and the next command reconnects', async () => {
    const err = await session
      .exec('echo started; exec sleep 300', {
        onLine: (_s, line) => {
          if (line === 'started') expect(sshd.killSessions()).toBeGreaterThan(0);
        },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isDisconnected(err)).toBe(true);
    expect(session.connected).toBe(false);
    expect((await session.run('echo back', { onLine: () => {} })).stdoutTail).toBe('back');
    expect(session.connected).toBe(true);
  });
});

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
