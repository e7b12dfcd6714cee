/**
 * Output handling for remote commands: split byte streams into lines (UTF-8 safe across chunks),
 * keep the last lines for error messages, and hide secret values in anything shown or logged.
 */
import { StringDecoder } from 'node:string_decoder';

/** Splits a byte stream into lines; `\r\n` and `\n` both end a line. */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer): void {
    this.pending += this.decoder.write(chunk);
    let index: number;
    while ((index = this.pending.indexOf('\n')) !== -1) {
      const line = this.pending.slice(0, index);
      this.pending = this.pending.slice(index + 1);
      this.onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
    }
  }

  /** Emits a last line that had no newline. */
  end(): void {
    this.pending += this.decoder.end();
    if (this.pending.length > 0) {
      const line = this.pending;
      this.pending = '';
      this.onLine(line);
    }
  }
}

/** The last `max` lines seen. */
export class Tail {
  private readonly lines: string[] = [];

  constructor(private readonly max = 20) {}

  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.shift();
  }

  toArray(): string[] {
    return [...this.lines];
  }

  toString(): string {
    return this.lines.join('\n');
  }
}

export const REDACTED = '***';

/**
 * Returns a function that replaces every secret value (and every line of a multi-line secret that
 * is long enough to be recognisable) with `***`.
 */
export function redactor(secrets: readonly string[]): (text: string) => string {
  const needles = new Set<string>();
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    needles.add(secret);
    for (const part of secret.split(/\r?\n/)) if (part.length >= 4) needles.add(part);
  }
  // Longest first, so a secret containing another is replaced whole.
  const ordered = [...needles].sort((a, b) => b.length - a.length);
  if (ordered.length === 0) return (text) => text;
  return (text) => ordered.reduce((acc, needle) => acc.split(needle).join(REDACTED), text);
}
