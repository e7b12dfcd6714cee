/**
 * Work that concurrent builds of a run share, such as creating the one gallery every size publishes
 * to: the first caller of a key starts it, later callers await the same promise. A failure is not
 * kept (the next caller tries again). Each caller may stop waiting on its own signal; the work
 * itself runs on, for the others.
 */
export class SharedWork {
  private readonly started = new Map<string, Promise<unknown>>();

  run<T>(key: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    let shared = this.started.get(key) as Promise<T> | undefined;
    if (!shared) {
      shared = work();
      this.started.set(key, shared);
      shared.catch(() => this.started.delete(key));
    }
    if (!signal) return shared;
    signal.throwIfAborted();
    const running = shared;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
      running.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }
}
