/**
 * `--on-error ask` through a real pseudo-terminal (util-linux `script` runs kiln on a pty whose
 * other end this test types into and reads): a failed step is put to the person, who can have it
 * run again once fixed, keep everything (and get the SSH command that gets in, which is then run),
 * or clean up. Without a terminal, ask is an input error.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../../../src/pipeline/ledger.js';
import { runPaths } from '../../../src/pipeline/state-dir.js';
import { generateKeyPair } from '../../../src/ssh/index.js';
import { loginFor, startSshd, type TestSshd } from '../../support/sshd.js';
import type { AskChildConfig } from './ask-child.js';

const ANSWER_DEADLINE_MS = 60_000;
const key = generateKeyPair('ask-test');
let sshd: TestSshd;
let dir: string;
let runs = 0;

beforeAll(async () => {
  sshd = await startSshd({ authorizedKeys: [key.publicKey] });
  dir = await mkdtemp(join(tmpdir(), 'kiln-ask-'));
  await writeFile(join(dir, 'key'), key.privateKey, { mode: 0o600 });
});
afterAll(async () => {
  await sshd?.dispose();
  await rm(dir, { recursive: true, force: true });
});

/** kiln on a pseudo-terminal: what it printed so far, typing into it, and its exit code. */
function onPty(config: AskChildConfig) {
  // The command is fixed text; everything variable travels in the environment.
  const env: NodeJS.ProcessEnv = { ...process.env, KILN_ASK_CHILD: JSON.stringify(config), KILN_STATE_DIR: join(dir, 'state'), TERM: 'xterm' };
  delete env.CI;
  const child = spawn('script', ['-qefc', 'node --import tsx test/integration/cli/ask-child.ts', '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  const waiters: Array<() => void> = [];
  const onData = (chunk: Buffer) => {
    output += chunk.toString().replace(/\r/g, '');
    waiters.splice(0).forEach((w) => w());
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = once(child, 'exit').then(([code]) => code as number);
  return {
    output: () => output,
    type: (text: string) => child.stdin.write(text),
    /** Resolves once the output shows `pattern` `times` times. */
    until: (pattern: string, times = 1) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${times} x "${pattern}" within ${ANSWER_DEADLINE_MS} ms; output:\n${output}`)), ANSWER_DEADLINE_MS);
        const check = () => {
          if (output.split(pattern).length > times) return (clearTimeout(timer), resolve());
          if (child.exitCode !== null) return (clearTimeout(timer), reject(new Error(`kiln ended (${child.exitCode}) before "${pattern}"; output:\n${output}`)));
          waiters.push(check);
        };
        check();
        child.on('exit', check);
      }),
    exited,
    kill: () => child.kill('SIGKILL'),
  };
}

function configFor(failStep: AskChildConfig['failStep']): AskChildConfig {
  const runId = `rask${String(++runs).padStart(4, '0')}`;
  return { runId, ssh: loginFor(sshd), keyFile: join(dir, 'key'), failStep, failFile: join(dir, `${runId}.fail`), manifest: join(dir, `${runId}-manifest.json`) };
}

async function ledgerOf(runId: string) {
  return (await Ledger.open(runPaths(runId, join(dir, 'state')).ledger, runId)).entries();
}

const QUESTION = 'What now? [cleanup/abort/retry]: ';
const liveOf = (output: string) => JSON.parse(/^live: (.*)$/m.exec(output)?.[1] ?? 'null') as Record<string, string> | null;

describe('kiln build --on-error ask, on a terminal', () => {
  it('runs the failed step again once its cause is fixed, after deleting what the failed attempt made', async () => {
    const config = configFor('capture');
    await writeFile(config.failFile, 'capture fails while this file exists');
    const kiln = onPty(config);
    try {
      await kiln.until(QUESTION);
      expect(kiln.output()).toContain(`${config.runId}-local-s: step capture failed: capture failed on purpose`);
      await rm(config.failFile);
      kiln.type('retry\n');
      expect(await kiln.exited).toBe(0);
    } finally {
      kiln.kill();
    }
    const output = kiln.output();
    expect(output).toContain('on-error ask: running step capture again');
    // The image of the failed attempt went first; the second attempt's image and its copy are the product.
    expect(output).toContain('cleanup: deleting local image image-4');
    expect(liveOf(output)).toEqual({ 'image-5': 'image', 'image-copy-6': 'image-copy' });
    expect(await ledgerOf(config.runId)).toEqual([]);
  });

  it('keeps everything on abort, and prints the SSH command that gets in and the cleanup command', async () => {
    const config = configFor('stop');
    await writeFile(config.failFile, 'stop fails');
    const kiln = onPty(config);
    try {
      await kiln.until(QUESTION);
      kiln.type('abort\n');
      expect(await kiln.exited).toBe(1);
    } finally {
      kiln.kill();
    }
    const output = kiln.output();
    expect(liveOf(output)).toEqual({ 'key-pair-1': 'key-pair', 'security-group-2': 'security-group', 'instance-3': 'instance' });
    expect((await ledgerOf(config.runId)).map((e) => e.kind)).toEqual(['key-pair', 'security-group', 'instance']);
    expect(output).toContain(`delete them with: kiln cleanup --run ${config.runId}`);
    const ssh = /get in with: (ssh .*)$/m.exec(output)?.[1] ?? '';
    const keyPath = runPaths(config.runId, join(dir, 'state')).build(`${config.runId}-local-s`).sshKey;
    expect(ssh).toBe(`ssh -i ${keyPath} -p ${sshd.port} -o IdentitiesOnly=yes ${sshd.user}@${sshd.host}`);
    // The command works as printed (batch mode, and this test's throwaway host key trust).
    const login = ssh.replace(/^ssh /, 'ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null ');
    const { stdout } = await execa('bash', ['-c', `${login} echo logged-in`]);
    expect(stdout).toBe('logged-in');
  });

  it('asks again on an answer it does not know, and deletes everything on cleanup', async () => {
    const config = configFor('launch');
    await writeFile(config.failFile, 'launch fails');
    const kiln = onPty(config);
    try {
      await kiln.until(QUESTION);
      kiln.type('maybe\n');
      await kiln.until(QUESTION, 2);
      kiln.type('c\n');
      expect(await kiln.exited).toBe(1);
    } finally {
      kiln.kill();
    }
    const output = kiln.output();
    expect(output).toContain('expected cleanup, abort or retry (or c, a, r), found "maybe"');
    expect(liveOf(output)).toEqual({});
    expect(await ledgerOf(config.runId)).toEqual([]);
    expect(output).not.toContain('get in with');
  });

  it('cleans up when Ctrl-C comes while it asks, and exits 130', async () => {
    const config = configFor('stop');
    await writeFile(config.failFile, 'stop fails');
    const kiln = onPty(config);
    try {
      await kiln.until(QUESTION);
      kiln.type('\x03'); // the terminal turns it into SIGINT for kiln
      expect(await kiln.exited).toBe(130);
    } finally {
      kiln.kill();
    }
    const output = kiln.output();
    expect(output).toContain('interrupted: undoing what the builds created');
    expect(liveOf(output)).toEqual({});
    expect(await ledgerOf(config.runId)).toEqual([]);
  });
});

describe('kiln build --on-error ask, without a terminal', () => {
  it('is an input error saying why (exit 2)', async () => {
    const result = await execa('node', ['bin/kiln.js', 'build', 'images/gitea.yaml', '-t', 'local', '-s', 's', '-V', '1.22.0', '--on-error', 'ask'], {
      reject: false,
      input: '',
      env: { CI: 'true', KILN_STATE_DIR: join(dir, 'state') },
    });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('--on-error: ask needs a terminal to ask on, and stdin is not one');
  });
});
