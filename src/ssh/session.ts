/**
 * SshSession: one SSH connection to a build VM, remembering how it was made so it can reconnect.
 * Ties together connect (backoff, host key), exec (sudo, env as data, deadlines), run (throws on a
 * non-zero exit with the last lines) and the uploads.
 */
import { KilnError } from '../core/errors.js';
import { connect, describeTarget, SshDisconnectedError, type Connection, type ConnectOptions } from './connect.js';
import { DEFAULT_EXEC_TIMEOUT_MS, exec, summarize, type ExecOptions, type ExecResult } from './exec.js';
import type { SFTPWrapper } from 'ssh2';
import type { UploadHost, UploadOptions } from './upload-host.js';
import { uploadFile, type UploadFileOptions, type UploadFileResult } from './upload-file.js';
import { uploadTree, type UploadTreeResult } from './upload-tree.js';

export interface SessionOptions extends ConnectOptions {
  /** Deadline for commands that do not give one; default 10 minutes. */
  defaultExecTimeoutMs?: number;
}

export class SshSession implements UploadHost {
  readonly target: string;
  private conn: Connection | undefined;
  private reconnecting: Promise<void> | undefined;

  private constructor(readonly options: SessionOptions) {
    this.target = describeTarget(options);
  }

  /** Connects (waiting for SSH to come up until options.timeoutMs) and returns the session. */
  static async connect(options: SessionOptions): Promise<SshSession> {
    const session = new SshSession(options);
    session.conn = await connect(options);
    return session;
  }

  /** SHA256 fingerprint of the host key the server presented on the last connection. */
  get hostFingerprint(): string | undefined {
    return this.conn?.hostFingerprint;
  }

  get connected(): boolean {
    return this.conn !== undefined && !this.conn.closed;
  }

  onDisconnect(listener: () => void): () => void {
    const conn = this.conn;
    if (!conn) {
      listener();
      return () => {};
    }
    return conn.onClose(() => listener());
  }

  log(line: string): void {
    this.options.onLog?.(line);
  }

  /** Drops the current connection (if any) and connects again with the same options. */
  async reconnect(): Promise<void> {
    if (!this.reconnecting) {
      this.reconnecting = (async () => {
        this.conn?.end();
        this.conn = undefined;
        this.log(`ssh: reconnecting to ${this.target}`);
        this.conn = await connect(this.options);
      })().finally(() => (this.reconnecting = undefined));
    }
    return this.reconnecting;
  }

  /**
   * Runs a command and returns its exit status and last lines, whatever the exit code. Reconnects
   * first if the connection is known to have dropped (nothing has run yet, so that is safe); a
   * drop while the command runs is thrown as SshDisconnectedError and the command is not retried.
   */
  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    if (this.reconnecting) await this.reconnecting;
    if (!this.connected) await this.reconnect();
    const conn = this.conn;
    if (!conn) throw new SshDisconnectedError(`not connected to ${this.target}`, { target: this.target });
    return exec(conn, command, { ...options, timeoutMs: options.timeoutMs ?? this.options.defaultExecTimeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS }, (line) => this.log(line));
  }

  /** A new SFTP channel on the current connection (reconnecting first if it dropped); end it when done. */
  async sftp(): Promise<SFTPWrapper> {
    if (this.reconnecting) await this.reconnecting;
    if (!this.connected) await this.reconnect();
    const conn = this.conn;
    if (!conn) throw new SshDisconnectedError(`not connected to ${this.target}`, { target: this.target });
    return new Promise((resolve, reject) =>
      conn.client.sftp((err, sftp) => {
        if (!err) resolve(sftp);
        else if (conn.closed) reject(new SshDisconnectedError(`connection to ${this.target} lost opening SFTP`, { target: this.target }, err));
        else reject(new KilnError('SSH', `could not open SFTP on ${this.target}: ${err.message}`, { target: this.target }, { cause: err }));
      }),
    );
  }

  /** exec(), but a non-zero exit (or a signal) throws KilnError('SSH') carrying the last 20 lines. */
  async run(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const result = await this.exec(command, options);
    if (result.code !== 0) {
      const how = result.code === null ? `was killed by signal ${result.signal ?? '?'}` : `exited with code ${result.code}`;
      throw new KilnError('SSH', `command on ${this.target} ${how}: ${summarize(command)}${result.tail.length ? `\n${result.tail.join('\n')}` : ''}`, {
        target: this.target,
        command: summarize(command),
        exitCode: result.code ?? undefined,
        signal: result.signal ?? undefined,
      });
    }
    return result;
  }

  /** Copies the contents of `localDir` into `remoteDir` as one tar stream over one channel. */
  async uploadTree(localDir: string, remoteDir: string, options?: UploadOptions): Promise<UploadTreeResult> {
    return uploadTree(this, localDir, remoteDir, options);
  }

  /** Streams one file, verifies its sha256 remotely, resumes after a dropped connection. */
  async uploadFile(localPath: string, remotePath: string, options?: UploadFileOptions): Promise<UploadFileResult> {
    return uploadFile(this, localPath, remotePath, options);
  }

  close(): void {
    this.conn?.end();
    this.conn = undefined;
  }
}
