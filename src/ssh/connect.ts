/**
 * Getting an SSH session to a machine that may still be booting: retry with backoff until the
 * deadline while it is "not up yet" (refused, reset, timed out, no banner), but stop at once when
 * the server refused our key or presented a host key we did not expect.
 */
import { NodeSSH, type Config } from 'node-ssh';
import type { Client } from 'ssh2';
import { KilnError } from '../core/errors.js';
import { done, notYet, waitFor } from '../core/wait.js';
import { expectedFingerprint, fingerprintOfBlob, privateKeyFingerprint } from './keys.js';

export interface ConnectOptions {
  host: string;
  /** Default 22. */
  port?: number;
  username: string;
  /** OpenSSH private key text (e.g. from generateKeyPair()). */
  privateKey: string;
  /**
   * Host keys we accept: OpenSSH public key lines (`ssh-ed25519 AAAA...`) or `SHA256:` fingerprints.
   * When empty or absent the host key is not verified (and the log says so).
   */
  hostKeys?: string[];
  /** How long to keep trying to get a session, in milliseconds. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** SSH keepalive interval; default 10 s. The connection is dropped after 3 unanswered ones. */
  keepaliveIntervalMs?: number;
  /** Longest single attempt (TCP + banner + handshake); default 20 s. */
  attemptTimeoutMs?: number;
  /** Progress and diagnostics, one line at a time. */
  onLog?: (line: string) => void;
}

/** An established connection. `closed` turns true when the transport ends for any reason. */
export interface Connection {
  ssh: NodeSSH;
  client: Client;
  /** `user@host:port`, for messages. */
  target: string;
  /** SHA256 fingerprint of the host key the server presented. */
  hostFingerprint: string;
  readonly closed: boolean;
  /** Calls `listener` once when the connection ends (at once if it already has); returns an unsubscribe. */
  onClose(listener: (reason?: Error) => void): () => void;
  end(): void;
}

/** The transport ended while something was using it: the caller may reconnect and retry. */
export class SshDisconnectedError extends KilnError {
  constructor(message: string, context: Record<string, string | number | boolean | undefined> = {}, cause?: unknown) {
    super('SSH', message, { ...context, disconnected: true }, { cause });
    this.name = 'SshDisconnectedError';
  }
}

export function isDisconnected(err: unknown): err is SshDisconnectedError {
  return err instanceof SshDisconnectedError;
}

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

export function describeTarget(options: Pick<ConnectOptions, 'host' | 'port' | 'username'>): string {
  return `${options.username}@${options.host}:${options.port ?? 22}`;
}

/** Connects, retrying with backoff while the server is not up yet, until `timeoutMs`. */
export async function connect(options: ConnectOptions): Promise<Connection> {
  const log = options.onLog ?? (() => {});
  const target = describeTarget(options);
  const expected = (options.hostKeys ?? []).map(expectedFingerprint);
  const deadline = Date.now() + options.timeoutMs;
  log(`ssh: connecting to ${target}${expected.length ? '' : ' (host key will not be verified)'}`);
  try {
    return await waitFor(
      async () => {
        const remaining = deadline - Date.now();
        const outcome = await attempt(options, target, expected, Math.max(1_000, Math.min(options.attemptTimeoutMs ?? 20_000, remaining)));
        if (outcome.connection) return done(outcome.connection);
        log(`ssh: ${target} not up yet (${outcome.reason}), retrying`);
        return notYet(outcome.reason);
      },
      { what: `SSH on ${target}`, timeoutMs: options.timeoutMs, initialDelayMs: 250, maxDelayMs: 5_000, signal: options.signal },
    );
  } catch (err) {
    if (options.signal?.aborted) throw new KilnError('INTERRUPTED', `connecting to ${target} was interrupted`, { target }, { cause: err });
    throw err;
  }
}

type Outcome = { connection: Connection; reason?: undefined } | { connection?: undefined; reason: string };

async function attempt(options: ConnectOptions, target: string, expected: string[], readyTimeout: number): Promise<Outcome> {
  const log = options.onLog ?? (() => {});
  let presented: string | undefined;
  let mismatch = false;
  const ssh = new NodeSSH();
  const config: Config = {
    host: options.host,
    port: options.port ?? 22,
    username: options.username,
    privateKey: options.privateKey,
    readyTimeout,
    keepaliveInterval: options.keepaliveIntervalMs ?? 10_000,
    keepaliveCountMax: 3,
    tryKeyboard: false,
    hostVerifier: (key: Buffer): boolean => {
      presented = fingerprintOfBlob(key);
      mismatch = expected.length > 0 && !expected.includes(presented);
      return !mismatch;
    },
  };
  const onAbort = (): void => void ssh.connection?.end();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await ssh.connect(config);
  } catch (err) {
    ssh.dispose();
    options.signal?.throwIfAborted();
    if (mismatch) {
      throw new KilnError(
        'SSH',
        `host key mismatch on ${target}: expected ${expected.join(' or ')}, the server presented ${presented}; refusing to connect`,
        { target, expected: expected.join(' '), presented },
        { cause: err },
      );
    }
    const level = (err as { level?: string }).level;
    const message = err instanceof Error ? err.message : String(err);
    if (level === 'client-authentication') {
      const key = privateKeyFingerprint(options.privateKey);
      throw new KilnError(
        'SSH',
        `${options.host}:${options.port ?? 22} refused the key${key ? ` ${key}` : ''} for user ${options.username} (authentication failed; the host is up)`,
        { target, user: options.username, key },
        { cause: err },
      );
    }
    if (/privateKey|private key/i.test(message)) {
      throw new KilnError('INPUT', `the SSH private key for ${target} is unusable: ${message}`, { target }, { cause: err });
    }
    const code = (err as { code?: unknown }).code;
    const reason = typeof code === 'string' && TRANSIENT_CODES.has(code) ? code : message;
    return { reason };
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
  const client = ssh.connection;
  if (!client) throw new KilnError('SSH', `connection to ${target} ended right after it was established`, { target });
  if (expected.length === 0) log(`ssh: WARNING host key of ${target} NOT verified (no expected host key given); it presented ${presented}`);
  else log(`ssh: host key of ${target} verified (${presented})`);
  log(`ssh: connected to ${target}`);
  return { connection: wrap(ssh, client, target, presented ?? 'unknown', log) };
}

function wrap(ssh: NodeSSH, client: Client, target: string, hostFingerprint: string, log: (line: string) => void): Connection {
  let closed = false;
  let reason: Error | undefined;
  const listeners = new Set<(reason?: Error) => void>();
  const onEnd = (): void => {
    if (closed) return;
    closed = true;
    log(`ssh: connection to ${target} closed${reason ? ` (${reason.message})` : ''}`);
    for (const listener of [...listeners]) listener(reason);
    listeners.clear();
  };
  // After 'ready' node-ssh no longer listens for errors: without this an error would crash the process.
  client.on('error', (err: Error) => {
    reason = err;
    log(`ssh: connection to ${target} failed: ${err.message}`);
  });
  client.on('end', onEnd);
  client.on('close', onEnd);
  return {
    ssh,
    client,
    target,
    hostFingerprint,
    get closed() {
      return closed;
    },
    onClose(listener) {
      if (closed) {
        listener(reason);
        return () => {};
      }
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    end() {
      ssh.dispose();
      onEnd();
    },
  };
}
