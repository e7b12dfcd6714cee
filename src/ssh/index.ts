/** SSH to build VMs: keys, connect with backoff and host-key check, exec, uploads. */
export { generateKeyPair, fingerprint, fingerprintOfBlob, expectedFingerprint, parsePublicKeyLine, type SshKeyPair } from './keys.js';
export { connect, isDisconnected, SshDisconnectedError, type Connection, type ConnectOptions } from './connect.js';
export { DEFAULT_EXEC_TIMEOUT_MS, type ExecOptions, type ExecResult, type OutputStream } from './exec.js';
export { secret, shellQuote, type EnvValue, type SecretValue } from './shell.js';
export { sshCommandLine } from './command.js';
export { sha256File, type UploadFileOptions, type UploadFileResult } from './upload-file.js';
export { type UploadTreeResult } from './upload-tree.js';
export { type UploadOptions } from './upload-host.js';
export { SshSession, type SessionOptions } from './session.js';
