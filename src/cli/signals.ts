/**
 * SIGINT/SIGTERM handling for long commands: the first signal aborts (builds undo what they
 * created, under a deadline of their own); the second says what is left and exits at once.
 */
import { EXIT_INTERRUPTED } from '../core/errors.js';

export interface Interrupt {
  signal: AbortSignal;
  dispose(): void;
}

export function onInterrupt(handlers: { first: () => void; second: () => void }): Interrupt {
  const controller = new AbortController();
  let count = 0;
  const handle = (name: NodeJS.Signals) => {
    count++;
    if (count === 1) {
      handlers.first();
      controller.abort(new Error(`received ${name}`));
    } else {
      handlers.second();
      process.exit(EXIT_INTERRUPTED);
    }
  };
  process.on('SIGINT', handle);
  process.on('SIGTERM', handle);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', handle);
      process.off('SIGTERM', handle);
    },
  };
}
