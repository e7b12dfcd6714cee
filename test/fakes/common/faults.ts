/**
 * Fault injection shared by the wire-level cloud fakes: a seeded random source (so a failing run can
 * be replayed with the same seed) deciding, per request, whether to answer with throttling or a
 * server error instead of serving it.
 */

export interface FaultOptions {
  /** Fraction of requests (0..1) answered with the service's throttling error. */
  throttleRate?: number;
  /** Fraction of requests (0..1) answered with a 5xx server error. */
  serverErrorRate?: number;
  /** Seed for the random source; the same seed gives the same sequence of faults. */
  seed?: number;
  /** Only these operation names are faulted (default: all). */
  only?: string[];
}

export type Fault = 'throttle' | 'server-error' | undefined;

export class FaultInjector {
  private random: () => number;
  /** Counts of faults served, by kind, for tests to assert that faults really happened. */
  readonly served = { throttle: 0, 'server-error': 0 };

  constructor(private options: FaultOptions = {}) {
    this.random = mulberry32(options.seed ?? 1);
  }

  configure(options: FaultOptions): void {
    this.options = options;
    this.random = mulberry32(options.seed ?? 1);
  }

  /** Decides the fate of one request to `operation`. */
  next(operation: string): Fault {
    const { throttleRate = 0, serverErrorRate = 0, only } = this.options;
    if (only && !only.includes(operation)) return undefined;
    const roll = this.random();
    let fault: Fault;
    if (roll < throttleRate) fault = 'throttle';
    else if (roll < throttleRate + serverErrorRate) fault = 'server-error';
    if (fault) this.served[fault]++;
    return fault;
  }
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
