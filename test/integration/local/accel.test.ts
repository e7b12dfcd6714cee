import { afterEach, describe, expect, it } from 'vitest';
import { detectAccel } from '../../../src/targets/local/accel.js';

describe('detectAccel', () => {
  const saved = process.env.KILN_ACCEL;
  afterEach(() => {
    if (saved === undefined) delete process.env.KILN_ACCEL;
    else process.env.KILN_ACCEL = saved;
  });

  it('decides kvm or tcg with a reason, and caches the decision', async () => {
    delete process.env.KILN_ACCEL;
    const first = await detectAccel({ refresh: true });
    expect(['kvm', 'tcg']).toContain(first.accel);
    expect(first.reason.length).toBeGreaterThan(10);
    expect(typeof first.cpu).toBe('string');
    expect(await detectAccel()).toBe(first);
  });

  it('honours KILN_ACCEL', async () => {
    process.env.KILN_ACCEL = 'tcg';
    expect(await detectAccel({ refresh: true })).toMatchObject({ accel: 'tcg', cpu: 'max', reason: 'forced by KILN_ACCEL=tcg' });
  });
});
