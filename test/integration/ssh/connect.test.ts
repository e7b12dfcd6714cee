import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KilnError } from '../../../src/core/errors.js';
import { fingerprint, generateKeyPair, SshSession } from '../../../src/ssh/index.js';
import { freePort, loginFor, startSshd, type TestSshd } from '../../support/sshd.js';

const key = generateKeyPair('kiln-test-client');
let sshd: TestSshd;

beforeAll(async () => {
  sshd = await startSshd({ authorizedKeys: [key.publicKey] });
});
afterAll(async () => {
  await sshd?.dispose();
});

async function failure(promise: Promise<unknown>): Promise<KilnError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KilnError);
  return err as KilnError;
}

describe('ssh connect', () => {
  it('logs in with the key and verifies the host key given as a key line or a fingerprint', async () => {
    for (const hostKey of [sshd.hostPublicKey, fingerprint(sshd.hostPublicKey)]) {
      const logs: string[] = [];
      const session = await SshSession.connect({ ...loginFor(sshd), hostKeys: [hostKey], privateKey: key.privateKey, timeoutMs: 10_000, onLog: (l) => logs.push(l) });
      try {
        expect(session.hostFingerprint).toBe(fingerprint(sshd.hostPublicKey));
        const result = await session.run('echo "$(id -un) on $(hostname)"', { onLine: () => {} });
        expect(result.stdoutTail).toMatch(new RegExp(`^${sshd.user} on `));
        expect(logs.join('\n')).toContain(`verified (${fingerprint(sshd.hostPublicKey)})`);
      } finally {
        session.close();
      }
    }
  });

  it('says clearly when the host key is not verified, and which one was presented', async () => {
    const logs: string[] = [];
    const session = await SshSession.connect({ ...loginFor(sshd), hostKeys: undefined, privateKey: key.privateKey, timeoutMs: 10_000, onLog: (l) => logs.push(l) });
    session.close();
    const warning = logs.find((l) => l.includes('NOT verified'));
    expect(warning).toBeDefined();
    expect(warning).toContain(fingerprint(sshd.hostPublicKey));
  });

  it('reports a refused key at once, naming the user, instead of retrying until the deadline', async () => {
    const stranger = generateKeyPair('not-authorized');
    const started = Date.now();
    const err = await failure(SshSession.connect({ ...loginFor(sshd), privateKey: stranger.privateKey, timeoutMs: 30_000 }));
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(err.code).toBe('SSH');
    expect(err.message).toContain(`refused the key ${stranger.fingerprint} for user ${sshd.user}`);
  });

  it('stops at a host key mismatch and shows expected and presented fingerprints', async () => {
    const other = generateKeyPair('some-other-host');
    const started = Date.now();
    const err = await failure(SshSession.connect({ ...loginFor(sshd), hostKeys: [other.publicKey], privateKey: key.privateKey, timeoutMs: 30_000 }));
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(err.code).toBe('SSH');
    expect(err.message).toContain('host key mismatch');
    expect(err.message).toContain(`expected ${other.fingerprint}`);
    expect(err.message).toContain(`presented ${fingerprint(sshd.hostPublicKey)}`);
  });

  it('waits for a server that is not up yet and connects once it starts', async () => {
    const port = await freePort();
    const late = await startSshd({ port, authorizedKeys: [key.publicKey], deferStart: true });
    try {
      const logs: string[] = [];
      let sawNotUp!: () => void;
      const notUp = new Promise<void>((resolve) => (sawNotUp = resolve));
      const connecting = SshSession.connect({
        ...loginFor(late),
        privateKey: key.privateKey,
        timeoutMs: 30_000,
        onLog: (line) => {
          logs.push(line);
          if (line.includes('not up yet')) sawNotUp();
        },
      });
      await notUp; // at least one attempt failed because nothing listened
      await late.restart(); // now start it
      const session = await connecting;
      try {
        expect(logs.find((l) => l.includes('not up yet'))).toContain('ECONNREFUSED');
        expect((await session.run('echo up', { onLine: () => {} })).stdoutTail).toBe('up');
      } finally {
        session.close();
      }
    } finally {
      await late.dispose();
    }
  });

  it('stops waiting when its signal aborts', async () => {
    const port = await freePort();
    const controller = new AbortController();
    const connecting = SshSession.connect({
      host: '127.0.0.1',
      port,
      username: 'nobody',
      privateKey: key.privateKey,
      timeoutMs: 60_000,
      signal: controller.signal,
      onLog: (line) => {
        if (line.includes('not up yet')) controller.abort();
      },
    });
    const started = Date.now();
    const err = await failure(connecting);
    expect(err.code).toBe('INTERRUPTED');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('gives up with TIMEOUT at the deadline when nothing ever answers', async () => {
    const port = await freePort();
    const started = Date.now();
    const err = await failure(SshSession.connect({ host: '127.0.0.1', port, username: 'nobody', privateKey: key.privateKey, timeoutMs: 1_500 }));
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toContain('ECONNREFUSED');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
    expect(Date.now() - started).toBeLessThan(6_000);
  });
});
