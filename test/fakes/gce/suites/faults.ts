/**
 * Injected throttling (429 rateLimitExceeded) and server errors (503 backendError), interceptors,
 * and requestId replay, as the real SDK sees them. With google-gax 5's REST transport the SDK does
 * not retry either (its retry codes are gRPC codes, the error carries HTTP codes): the driver must.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GceHttpError, startGceFake, type GceFake } from '../index.js';
import { apiErrorOf, computeClients, operationOf, untilDone, type ComputeClients } from '../sdk-helpers.js';

const project = 'kiln-test';
const zone = 'us-east1-b';

export function faultsSuite(): void {
  describe('GCE fake: faults and interception through the SDK', () => {
    let fake: GceFake;
    let gce: ComputeClients;

    beforeAll(async () => {
      fake = await startGceFake();
      gce = computeClients(fake);
    });

    afterAll(async () => {
      await gce.close();
      await fake.close();
    });

    beforeEach(() => {
      fake.faults.configure({});
      fake.requests.splice(0);
    });

    it('answers 429 rateLimitExceeded, which the SDK passes through without retrying', async () => {
      fake.faults.configure({ throttleRate: 1, only: ['images.getFromFamily'] });
      const before = fake.faults.served.throttle;
      const err = await apiErrorOf(() => gce.images.getFromFamily({ project: 'debian-cloud', family: 'debian-12' }));
      expect(err).toMatchObject({ status: 429, reason: 'rateLimitExceeded' });
      expect(err.body.error.status).toBe('RESOURCE_EXHAUSTED');
      expect(fake.faults.served.throttle).toBe(before + 1);
      expect(fake.requests.filter((r) => r.method === 'images.getFromFamily').map((r) => r.status)).toEqual([429]);
      // Other methods are not affected by `only`.
      const [image] = await gce.images.get({ project: 'debian-cloud', image: 'debian-12-bookworm-v20250311' });
      expect(image.status).toBe('READY');
    });

    it('answers 503 backendError, which the SDK does not retry even for idempotent GETs', async () => {
      fake.faults.configure({ serverErrorRate: 1, only: ['instances.get', 'instances.insert'] });
      const get = await apiErrorOf(() => gce.instances.get({ project, zone, instance: 'whatever' }));
      expect(get).toMatchObject({ status: 503, reason: 'backendError' });
      const insert = await apiErrorOf(() =>
        gce.instances.insert({ project, zone, instanceResource: { name: 'kiln-503', machineType: `zones/${zone}/machineTypes/e2-small` } }),
      );
      expect(insert.status).toBe(503);
      expect(fake.requests.map((r) => `${r.method} ${r.status}`)).toEqual(['instances.get 503', 'instances.insert 503']);
      expect(fake.state.live().instances).toEqual([]);
    });

    it('lets a driver-style retry loop get through a seeded mix of faults', async () => {
      fake.faults.configure({ throttleRate: 0.4, serverErrorRate: 0.3, seed: 42, only: ['images.getFromFamily'] });
      const served = () => fake.faults.served.throttle + fake.faults.served['server-error'];
      const before = served();
      let failures = 0;
      let name: string | null | undefined;
      for (let attempt = 0; attempt < 50 && !name; attempt++) {
        try {
          [{ name }] = await gce.images.getFromFamily({ project: 'ubuntu-os-cloud', family: 'ubuntu-2404-lts-amd64' });
        } catch (err) {
          expect([429, 503]).toContain((err as { status?: number }).status);
          failures++;
        }
      }
      expect(name).toBe('ubuntu-2404-noble-amd64-v20250313');
      expect(failures).toBeGreaterThan(0);
      expect(served() - before).toBe(failures);
    });

    it('replays the operation of a repeated requestId instead of creating twice', async () => {
      const requestId = '5b0c8e3e-6f4b-4a57-9d8e-0a4f2d7c1e11';
      const body = { name: 'kiln-idem', allowed: [{ IPProtocol: 'tcp', ports: ['22'] }], sourceRanges: ['192.0.2.1/32'] };
      const first = operationOf(await gce.firewalls.insert({ project, requestId, firewallResource: body }));
      await untilDone(gce, project, first);
      const second = operationOf(await gce.firewalls.insert({ project, requestId, firewallResource: body }));
      expect(second.name).toBe(first.name);
      expect(second.status).toBe('DONE');
      expect(fake.state.live().firewalls).toEqual([{ project, name: 'kiln-idem' }]);
      const third = await apiErrorOf(() => gce.firewalls.insert({ project, firewallResource: body }));
      expect(third.reason).toBe('alreadyExists');
      await untilDone(gce, project, operationOf(await gce.firewalls.delete({ project, firewall: 'kiln-idem' })));
    });

    it('lets an interceptor answer any error for one method', async () => {
      const remove = fake.intercept('images.insert', (call) =>
        call.body.name === 'kiln-denied'
          ? { error: new GceHttpError(403, 'forbidden', "Required 'compute.images.create' permission for 'projects/kiln-test/global/images/kiln-denied'") }
          : undefined,
      );
      try {
        const err = await apiErrorOf(() => gce.images.insert({ project, imageResource: { name: 'kiln-denied', sourceImage: 'projects/debian-cloud/global/images/family/debian-12' } }));
        expect(err).toMatchObject({ status: 403, reason: 'forbidden' });
        const op = operationOf(await gce.images.insert({ project, imageResource: { name: 'kiln-allowed', sourceImage: 'projects/debian-cloud/global/images/family/debian-12' } }));
        await untilDone(gce, project, op);
        const [copy] = await gce.images.get({ project, image: 'kiln-allowed' });
        expect(copy).toMatchObject({ status: 'READY', sourceImage: expect.stringMatching(/debian-12-bookworm-v20250311$/) });
      } finally {
        remove();
      }
      await untilDone(gce, project, operationOf(await gce.images.delete({ project, image: 'kiln-allowed' })));
      expect(fake.state.isEmpty()).toBe(true);
    });
  });
}
