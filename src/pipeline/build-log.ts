/**
 * A build's log: every line goes to the build's log file with a timestamp, and to the progress view
 * (`record` writes to the file only). Registered secrets are replaced by *** before a line goes anywhere.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

export type LogSink = (line: string) => void;

export class BuildLog {
  private readonly secrets = new Set<string>();
  private readonly file: WriteStream | undefined;

  constructor(
    path: string | undefined,
    private readonly sink: LogSink = () => {},
  ) {
    if (path) {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      this.file = createWriteStream(path, { flags: 'a', mode: 0o600 });
    }
  }

  /** Never print this value: private keys, tokens, passwords. */
  addSecret(value: string): void {
    if (value.length >= 4) this.secrets.add(value);
  }

  line = (text: string): void => {
    const clean = this.redact(text);
    this.file?.write(`${new Date().toISOString()} ${clean}\n`);
    this.sink(clean);
  };

  /** A line for the log file only (step boundaries the progress view shows in its own way). */
  record(text: string): void {
    this.file?.write(`${new Date().toISOString()} ${this.redact(text)}\n`);
  }

  redact(text: string): string {
    let out = text;
    for (const secret of this.secrets) out = out.split(secret).join('***');
    return out;
  }

  async close(): Promise<void> {
    const file = this.file;
    if (!file) return;
    await new Promise<void>((resolve) => file.end(resolve));
  }
}
