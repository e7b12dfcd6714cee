import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { armErrors } from '../../fakes/arm/index.js';
import { startSshd, type TestSshd } from '../../support/sshd.js';
import { build, sourcegraphPlan, startHarness, type Harness } from './harness.js';

let sshd: TestSshd;
let h: Harness;
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(() => sshd.dispose());
beforeEach(async () => {
  h = await startHarness(sshd);
});
afterEach(() => h.close());

/** The fake's client options with another retry bound. */
function retries(maxRetries: number) {
  const { options } = h.fake.clientOptions();
  return { clientOptions: { ...options, retryOptions: { ...options.retryOptions, maxRetries } } };
}

describe('azure driver: throttling and server errors', () => {
  test('random 5xx everywhere and 429s with Retry-After on creates and polls: the build still succeeds', async () => {
    h.fake.faults.configure({ serverErrorRate: 0.15, seed: 7 });
    h.fake.throttleNext('resourceGroups.createOrUpdate', 1, 1);
    h.fake.throttleNext('virtualMachines.createOrUpdate', 1, 1);
    h.fake.throttleNext('operations.status', 1, 1);
    const { result, ledger } = await build(h, await sourcegraphPlan('razf0001'), { driver: retries(8) });
    expect(result.error).toBeUndefined();
    expect(result.status).toBe('succeeded');
    expect(ledger.entries()).toEqual([]);

    const served = h.fake.requests;
    expect(h.fake.faults.served['server-error']).toBeGreaterThan(5);
    expect(served.filter((r) => r.status >= 500).length).toBe(h.fake.faults.served['server-error']);
    expect(served.filter((r) => r.status === 429).map((r) => r.operation).sort()).toEqual(['operations.status', 'resourceGroups.createOrUpdate', 'virtualMachines.createOrUpdate']);
    // each throttled call was sent again only after its Retry-After
    for (const op of ['resourceGroups.createOrUpdate', 'virtualMachines.createOrUpdate']) {
      const calls = served.filter((r) => r.operation === op);
      const throttled = calls.findIndex((r) => r.status === 429);
      const next = calls[throttled + 1];
      expect(next, op).toBeDefined();
      expect((next?.at ?? 0) - (calls[throttled]?.at ?? 0), op).toBeGreaterThanOrEqual(950);
    }
    // and the result is the same as without faults: only the artifacts and the shared gallery remain
    expect(Object.keys(h.fake.inventory().resources).sort()).toEqual([
      'Microsoft.Compute/galleries',
      'Microsoft.Compute/galleries/images',
      'Microsoft.Compute/galleries/images/versions',
      'Microsoft.Compute/images',
      'Microsoft.Resources/resourceGroups',
    ]);
  });

  test('retries are bounded: a persistent 503 fails the step with the ARM code, and the build is undone', async () => {
    h.fake.failNext('virtualNetworks.createOrUpdate', armErrors.internal(503), 100);
    const { result, ledger } = await build(h, await sourcegraphPlan('razf0002'), { driver: retries(2) });
    expect(result.status).toBe('failed');
    expect(result.failedStep).toBe('prepare');
    expect(result.error).toMatchObject({ code: 'CLOUD', context: { code: 'ServiceUnavailable', status: 503, resource: `/subscriptions/${h.fake.subscriptionId}/resourceGroups/kiln-razf0002-xs-rg/providers/Microsoft.Network/virtualNetworks/kiln-razf0002-xs-vnet` } });
    expect(h.fake.requests.filter((r) => r.operation === 'virtualNetworks.createOrUpdate')).toHaveLength(3);
    expect(ledger.entries()).toEqual([]);
    expect(h.fake.inventory().resources).toEqual({});
  });
});
