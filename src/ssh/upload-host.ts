/** What the uploads need from a session, and their shared options. */
import type { SFTPWrapper } from 'ssh2';
import type { ExecOptions, ExecResult } from './exec.js';

/** What uploads need from a session. */
export interface UploadHost {
  readonly target: string;
  readonly connected: boolean;
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  /** A new SFTP channel on the current connection; the caller ends it. */
  sftp(): Promise<SFTPWrapper>;
  reconnect(): Promise<void>;
  /** Calls `listener` once when the current connection ends; returns an unsubscribe. */
  onDisconnect(listener: () => void): () => void;
  log(line: string): void;
}

export interface UploadOptions {
  /** Write as root through `sudo -n`. */
  sudo?: boolean;
  /** Deadline for one transfer attempt; default 30 minutes. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export const DEFAULT_UPLOAD_TIMEOUT_MS = 30 * 60_000;
