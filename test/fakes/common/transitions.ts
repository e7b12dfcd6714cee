/**
 * Timed state transitions for the fakes: a resource enters a transitional state (pending, stopping,
 * RUNNING operation...) and moves on after a configured delay, or at once with delay 0. Every timer
 * is tracked so that `close()` leaves nothing running when a test ends.
 */

export type TransitionDelays = Record<string, number>;

export class Transitions {
  private timers = new Set<NodeJS.Timeout>();

  constructor(private delays: TransitionDelays = {}) {}

  setDelays(delays: TransitionDelays): void {
    this.delays = { ...this.delays, ...delays };
  }

  delayOf(name: string): number {
    return this.delays[name] ?? 0;
  }

  /**
   * Runs `apply` after the delay configured for `name` (0 by default: on the next tick, so a
   * client still observes the transitional state in the response that started it).
   */
  schedule(name: string, apply: () => void | Promise<void>): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      void Promise.resolve()
        .then(apply)
        .catch((err: unknown) => {
          console.error(`fake transition ${name} failed:`, err);
        });
    }, this.delayOf(name));
    this.timers.add(timer);
  }

  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}
