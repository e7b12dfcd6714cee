import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseApiRates } from '../../../src/cli/options.js';
import { ec2CallKind } from '../../../src/targets/aws/rate-limit.js';
import { armCallKind } from '../../../src/targets/azure/rate-limit.js';
import { gceCallKind, regionOf } from '../../../src/targets/gcp/rate-limit.js';
import { DEFAULT_API_RATES, RateLimits, type LimiterKey } from '../../../src/targets/rate-limits.js';

const aws: LimiterKey = { target: 'aws', account: '123456789012', region: 'us-west-2' };

describe('rate limits', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Starts `n` calls of `kind` at once; returns the times (fake ms) at which each one ran. */
  function burst(limits: RateLimits, kind: 'read' | 'write', n: number, key: LimiterKey = aws): number[] {
    const ran: number[] = [];
    for (let i = 0; i < n; i++) void limits.for(key).schedule(kind, async () => ran.push(Date.now()));
    return ran;
  }

  it('lets a key send at most its rate per second, reads and writes each on their own', async () => {
    const limits = new RateLimits({ aws: { read: 4, write: 2 } });
    const reads = burst(limits, 'read', 10);
    const writes = burst(limits, 'write', 5);
    await vi.advanceTimersByTimeAsync(5_000);
    // A burst of the rate at once, then one call every 1/rate seconds, as a token bucket refills.
    expect(reads).toEqual([0, 0, 0, 0, 1_000, 1_250, 1_500, 1_750, 2_000, 2_250]);
    expect(writes).toEqual([0, 0, 1_000, 1_500, 2_000]);
    // No second ever held more than the rate.
    for (const t of reads) expect(reads.filter((u) => u >= t && u < t + 1_000).length).toBeLessThanOrEqual(4);
    expect(limits.for(aws).counts).toEqual({ read: { calls: 10, delayed: 6 }, write: { calls: 5, delayed: 3 } });
  });

  it('shares one limiter per target, account and region, and only that', async () => {
    const limits = new RateLimits({ aws: { read: 2 } });
    const other = { ...aws, region: 'eu-west-1' };
    expect(limits.for({ ...aws })).toBe(limits.for(aws));
    expect(limits.for(other)).not.toBe(limits.for(aws));
    expect(limits.for({ ...aws, account: '210987654321' })).not.toBe(limits.for(aws));
    const here = burst(limits, 'read', 3);
    const there = burst(limits, 'read', 2, other);
    await vi.advanceTimersByTimeAsync(0);
    expect([here.length, there.length]).toEqual([2, 2]);
    expect(limits.all().map((l) => l.name)).toEqual(['aws/123456789012/us-west-2', 'aws/123456789012/eu-west-1', 'aws/210987654321/us-west-2']);
  });

  it('takes rates below one a second', async () => {
    const limits = new RateLimits({ gcp: { write: 0.5 } });
    const ran = burst(limits, 'write', 2, { target: 'gcp', account: 'p', region: 'global' });
    await vi.advanceTimersByTimeAsync(1_999);
    expect(ran).toEqual([0]);
    await vi.advanceTimersByTimeAsync(1);
    expect(ran).toEqual([0, 2_000]);
  });

  it('gives up waiting when the caller is aborted, and never makes that call', async () => {
    const limits = new RateLimits({ azure: { write: 1 } });
    const key = { target: 'azure', account: 'sub', region: 'management.azure.com' } as const;
    const calls: string[] = [];
    await limits.for(key).schedule('write', async () => calls.push('first'));
    const controller = new AbortController();
    const waiting = limits.for(key).schedule('write', async () => calls.push('aborted one'), controller.signal);
    const after = limits.for(key).schedule('write', async () => calls.push('third'));
    controller.abort(new Error('build interrupted'));
    await expect(waiting).rejects.toThrow('build interrupted');
    await vi.advanceTimersByTimeAsync(2_000);
    await after;
    expect(calls).toEqual(['first', 'third']);
  });

  it('passes results and errors of the call through', async () => {
    const limiter = new RateLimits().for(aws);
    await expect(limiter.schedule('read', async () => 42)).resolves.toBe(42);
    await expect(limiter.schedule('write', async () => Promise.reject(new Error('RequestLimitExceeded')))).rejects.toThrow('RequestLimitExceeded');
  });

  it('defaults to the providers\' documented sustained rates', () => {
    expect(DEFAULT_API_RATES).toEqual({ aws: { read: 20, write: 5 }, gcp: { read: 25, write: 25 }, azure: { read: 25, write: 10 } });
    const limits = new RateLimits({ azure: { write: 3 } });
    expect(limits.ratesOf('azure')).toEqual({ read: 25, write: 3 });
    expect(limits.ratesOf('aws')).toEqual(DEFAULT_API_RATES.aws);
  });
});

describe('kinds of call', () => {
  it('counts EC2 Describe/Get/List actions as reads', () => {
    expect(['DescribeImagesCommand', 'GetConsoleOutputCommand', 'RunInstancesCommand', 'CreateTagsCommand'].map(ec2CallKind)).toEqual(['read', 'read', 'write', 'write']);
  });

  it('counts GCE get, list and operation waits as reads, and keys zonal calls by region', () => {
    expect(['get', 'getFromFamily', 'getIamPolicy', 'list', 'wait', 'insert', 'setIamPolicy', 'deprecate', 'delete'].map(gceCallKind)).toEqual([
      'read',
      'read',
      'read',
      'read',
      'read',
      'write',
      'write',
      'write',
      'write',
    ]);
    expect([regionOf({ project: 'p', zone: 'us-central1-a' }), regionOf({ project: 'p', region: 'europe-west4' }), regionOf({ project: 'p' })]).toEqual(['us-central1', 'europe-west4', 'global']);
  });

  it('counts ARM GET and HEAD as reads', () => {
    expect(['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'PATCH'].map(armCallKind)).toEqual(['read', 'read', 'write', 'write', 'write', 'write']);
  });
});

describe('--api-rate', () => {
  it('sets one kind or both of a target', () => {
    expect(parseApiRates(['aws.write=10', 'gcp=50', 'azure.read=2.5'])).toEqual({ aws: { write: 10 }, gcp: { read: 50, write: 50 }, azure: { read: 2.5 } });
    expect(parseApiRates([])).toEqual({});
  });

  it.each(['aws', 'aws=0', 'aws=-1', 'ibm=5', 'aws.delete=5', 'aws.write=fast', 'local=5'])('refuses %j, naming the flag and the form', (value) => {
    expect(() => parseApiRates([value])).toThrow(`--api-rate: expected TARGET=n or TARGET.KIND=n with TARGET one of aws, gcp, azure, KIND read or write and n > 0 requests per second, found ${JSON.stringify(value)}`);
  });
});
