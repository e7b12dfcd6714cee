import { describe, expect, it } from 'vitest';
import { SharedWork } from '../../../src/core/shared-work.js';
import { GroupCommit } from '../../../src/pipeline/durable-file.js';

/** A promise with its resolve/reject outside. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

describe('shared work', () => {
  it('runs a key once for all its callers, and again after a failure', async () => {
    const shared = new SharedWork();
    let runs = 0;
    const first = deferred<string>();
    const work = () => {
      runs++;
      return first.promise;
    };
    const a = shared.run('gallery', work);
    const b = shared.run('gallery', work);
    const other = shared.run('other', async () => 'other');
    first.reject(new Error('conflict'));
    await expect(a).rejects.toThrow('conflict');
    await expect(b).rejects.toThrow('conflict');
    await expect(other).resolves.toBe('other');
    await expect(shared.run('gallery', async () => (runs++, 'eastus'))).resolves.toBe('eastus');
    await expect(shared.run('gallery', async () => (runs++, 'never'))).resolves.toBe('eastus');
    expect(runs).toBe(2);
  });

  it('lets one caller stop waiting without stopping the work for the others', async () => {
    const shared = new SharedWork();
    const work = deferred<string>();
    const controller = new AbortController();
    const impatient = shared.run('gallery', () => work.promise, controller.signal);
    const patient = shared.run('gallery', () => work.promise);
    controller.abort(new Error('interrupted'));
    await expect(impatient).rejects.toThrow('interrupted');
    work.resolve('eastus');
    await expect(patient).resolves.toBe('eastus');
  });
});

describe('group commit', () => {
  it('shares writes between the changes made while one is in flight, and resolves each after a write that began later', async () => {
    const writes: { done: ReturnType<typeof deferred<void>> }[] = [];
    let changes = 0;
    const seen: number[] = [];
    const commit = new GroupCommit(() => {
      seen.push(changes);
      const done = deferred<void>();
      writes.push({ done });
      return done.promise;
    });
    changes = 1;
    const first = commit.commit();
    await new Promise((r) => setImmediate(r));
    expect(writes).toHaveLength(1);
    const resolved: number[] = [];
    const later = [2, 3, 4].map((n) => {
      changes = n;
      return commit.commit().then(() => resolved.push(n));
    });
    await new Promise((r) => setImmediate(r));
    expect(writes).toHaveLength(1);
    writes[0]?.done.resolve(undefined);
    await first;
    await new Promise((r) => setImmediate(r));
    expect(resolved).toEqual([]);
    expect(writes).toHaveLength(2);
    writes[1]?.done.resolve(undefined);
    await Promise.all(later);
    expect(resolved).toEqual([2, 3, 4]);
    expect(seen).toEqual([1, 4]);
  });

  it('passes a failed write to its callers, and the next commit writes again', async () => {
    let attempt = 0;
    const commit = new GroupCommit(async () => {
      if (++attempt === 1) throw new Error('ENOSPC');
    });
    await expect(commit.commit()).rejects.toThrow('ENOSPC');
    await expect(commit.commit()).resolves.toBeUndefined();
    expect(attempt).toBe(2);
  });
});
