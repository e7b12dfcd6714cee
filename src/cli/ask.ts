/**
 * `--on-error ask`: a failed step is put to the person at the terminal: cleanup (delete what the
 * build made), abort (keep it all, then say how to get into the VM and how to clean up) or retry
 * (run the step again, once its cause is fixed). One question at a time, however many builds fail
 * at once. node:readline in the terminal's own line mode is enough for one three-way question (the
 * prompt libraries that do more no longer support Node 20), and leaves Ctrl-C to the terminal: it
 * interrupts the run, which then cleans up, as it would anywhere else.
 */
import { createInterface } from 'node:readline';
import type { FailedStep, FailureChoice } from '../pipeline/build.js';
import type { Output } from './output.js';

const CHOICES: Record<string, FailureChoice> = { c: 'cleanup', cleanup: 'cleanup', a: 'abort', abort: 'abort', r: 'retry', retry: 'retry' };

export type Ask = (failed: FailedStep) => Promise<FailureChoice>;

export function terminalAsk(out: Output, input: NodeJS.ReadableStream = process.stdin, output: NodeJS.WritableStream = process.stdout): Ask {
  let queue: Promise<unknown> = Promise.resolve();
  return (failed) => {
    const asked = queue.then(() => askOnce(failed, out, input, output));
    queue = asked.catch(() => undefined);
    return asked;
  };
}

async function askOnce(failed: FailedStep, out: Output, input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<FailureChoice> {
  failed.signal.throwIfAborted();
  out.line();
  out.line(`${failed.buildId}: step ${failed.step} failed: ${failed.error.message.split('\n')[0]}`);
  out.line('  cleanup  delete everything this build created');
  out.line('  abort    keep everything; print how to get into the VM and how to clean up later');
  out.line(`  retry    delete what the failed ${failed.step} made, then run it again (fix its cause first)`);
  const rl = createInterface({ input, output, terminal: false });
  const lines = rl[Symbol.asyncIterator]();
  const onAbort = () => rl.close();
  failed.signal.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      output.write('What now? [cleanup/abort/retry]: ');
      const { value, done } = await lines.next();
      failed.signal.throwIfAborted();
      if (done) throw new Error('the terminal closed before an answer came');
      const answer = String(value).trim().toLowerCase();
      const choice = CHOICES[answer];
      if (choice) return choice;
      out.line(`expected cleanup, abort or retry (or c, a, r), found ${JSON.stringify(answer)}`);
    }
  } finally {
    failed.signal.removeEventListener('abort', onAbort);
    rl.close();
  }
}
