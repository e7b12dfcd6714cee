/**
 * A minimal QMP client: one JSON object per line over a unix socket, commands answered in order,
 * asynchronous events ignored.
 */
import net from 'node:net';
import { KilnError } from '../../core/errors.js';
import { done, notYet, waitFor, type Poll } from '../../core/wait.js';

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

export class QmpClient {
  private readonly pending: Pending[] = [];
  private buffer = '';
  private closedError: Error | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new KilnError('LOCAL', `QMP connection failed: ${err.message}`)));
    socket.on('close', () => this.fail(new KilnError('LOCAL', 'QMP connection closed')));
  }

  /** Connects once QEMU has created the socket, and leaves capabilities negotiation done. */
  static async connect(socketPath: string, timeoutMs: number, signal?: AbortSignal): Promise<QmpClient> {
    const socket = await waitFor(
      () =>
        new Promise<Poll<net.Socket>>((resolve) => {
          const s = net.connect(socketPath);
          s.once('connect', () => resolve(done(s)));
          s.once('error', (err) => {
            s.destroy();
            resolve(notYet(err.message));
          });
        }),
      { what: `QEMU's QMP socket ${socketPath}`, timeoutMs, initialDelayMs: 50, maxDelayMs: 500, signal },
    );
    const client = new QmpClient(socket);
    // The greeting arrives unasked and is answered like a command.
    await new Promise<unknown>((resolve, reject) => client.pending.push({ command: 'greeting', resolve, reject }));
    await client.execute('qmp_capabilities');
    return client;
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      this.pending.push({ command, resolve, reject });
      this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    });
  }

  /** Runs a human monitor command (e.g. "info usernet") and returns its text. */
  async hmp(commandLine: string): Promise<string> {
    return String(await this.execute('human-monitor-command', { 'command-line': commandLine }));
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let message: { QMP?: unknown; return?: unknown; error?: { class?: string; desc?: string }; event?: string };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      return;
    }
    if (message.event !== undefined) return;
    const waiter = this.pending.shift();
    if (!waiter) return;
    if (message.error) {
      waiter.reject(new KilnError('LOCAL', `QMP ${waiter.command} failed: ${message.error.desc ?? message.error.class ?? 'unknown error'}`));
    } else {
      waiter.resolve(message.QMP ?? message.return);
    }
  }

  private fail(err: Error): void {
    this.closedError ??= err;
    for (const waiter of this.pending.splice(0)) waiter.reject(err);
  }
}
