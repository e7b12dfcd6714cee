import { ResourceManagementClient } from '@azure/arm-resources';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { LOCATION, buildNetwork, clients, raw, vmSpec, type Clients } from './fixtures.js';
import { armErrors, startArmFake, staticTokenCredential, type ArmFake } from './index.js';

describe('ARM fake: wire protocol', () => {
  let fake: ArmFake;
  let c: Clients;
  const rg = 'kiln-p1';
  const sub = () => `/subscriptions/${fake.subscriptionId}`;
  beforeEach(async () => {
    fake = await startArmFake();
    c = clients(fake);
    await c.resources.resourceGroups.createOrUpdate(rg, { location: LOCATION });
  });
  afterEach(() => fake.close());

  test('api-version: required, checked per resource type, and the SDKs’ own versions accepted', async () => {
    const missing = await raw(fake, 'GET', `${sub()}/resourcegroups/${rg}`);
    expect(missing).toMatchObject({ status: 400, body: { error: { code: 'MissingApiVersionParameter' } } });
    const unknown = await raw(fake, 'GET', `${sub()}/resourcegroups/${rg}?api-version=2099-01-01`);
    expect(unknown).toMatchObject({ status: 400, body: { error: { code: 'InvalidApiVersionParameter' } } });
    expect((unknown.body as { error: { message: string } }).error.message).toContain('2025-04-01');
    // a gallery api-version is not a VM api-version
    const wrongFamily = await raw(fake, 'GET', `${sub()}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines/x?api-version=2025-03-03`);
    expect(wrongFamily).toMatchObject({ status: 400, body: { error: { code: 'InvalidApiVersionParameter' } } });

    const old = new ResourceManagementClient(staticTokenCredential(), fake.subscriptionId, {
      ...fake.clientOptions().options,
      apiVersion: '2014-04-01',
    });
    await expect(old.resourceGroups.get(rg)).rejects.toMatchObject({ name: 'RestError', statusCode: 400, code: 'InvalidApiVersionParameter' });

    // what the installed SDKs send, one call per family
    const net = await buildNetwork(c, rg, 'p');
    await c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'vm', vmSpec(net.nicId), c.poll);
    for await (const _ of c.compute.disks.listByResourceGroup(rg)) void _;
    await c.compute.galleries.beginCreateOrUpdateAndWait(rg, 'g', { location: LOCATION }, c.poll);
    const versions = (operation: string) =>
      [...new Set(fake.requests.filter((r) => r.operation === operation).map((r) => new URLSearchParams(r.query).get('api-version')))];
    expect(versions('resourceGroups.createOrUpdate')).toEqual(['2025-04-01']);
    expect(versions('virtualNetworks.createOrUpdate')).toEqual(['2025-05-01']);
    expect(versions('virtualMachines.createOrUpdate')).toEqual(['2026-03-01']);
    expect(versions('disks.list')).toEqual(['2025-01-02']);
    expect(versions('galleries.createOrUpdate')).toEqual(['2025-03-03']);
    // the only errors served were the four provoked above
    expect(fake.requests.filter((r) => r.status >= 400).map((r) => r.code)).toEqual([
      'MissingApiVersionParameter',
      'InvalidApiVersionParameter',
      'InvalidApiVersionParameter',
      'InvalidApiVersionParameter',
    ]);
  });

  test('a bearer token must be present, and be the expected one when the fake has one', async () => {
    const anonymous = await raw(fake, 'GET', `${sub()}/resourcegroups/${rg}?api-version=2025-04-01`, undefined, false);
    expect(anonymous).toMatchObject({ status: 401, body: { error: { code: 'AuthenticationFailed' } } });

    const strict = await startArmFake({ token: 'expected-token' });
    try {
      const good = clients(strict);
      await expect(good.resources.resourceGroups.createOrUpdate('x', { location: LOCATION })).resolves.toMatchObject({ name: 'x' });
      const { subscriptionId, options } = strict.clientOptions();
      const wrong = new ResourceManagementClient(staticTokenCredential('stolen'), subscriptionId, options);
      await expect(wrong.resourceGroups.get('x')).rejects.toMatchObject({ statusCode: 401, code: 'InvalidAuthenticationToken' });
    } finally {
      await strict.close();
    }
  });

  test('LRO shapes: PUT 201 + Azure-AsyncOperation, DELETE/POST 202 + both, group delete Location only', async () => {
    fake.transitions.setDelays({ 'network.provision': 80 });
    const put = await raw(fake, 'PUT', `${sub()}/resourceGroups/${rg}/providers/Microsoft.Network/publicIPAddresses/ip?api-version=2025-05-01`, {
      location: LOCATION,
      sku: { name: 'Standard' },
    });
    expect(put.status).toBe(201);
    expect(put.body).toMatchObject({ properties: { provisioningState: 'Updating' } });
    expect(put.headers.location).toBeUndefined();
    const asyncUrl = String(put.headers['azure-asyncoperation']);
    expect(asyncUrl).toMatch(new RegExp(`^${fake.url}${sub()}/providers/Microsoft.Network/locations/westeurope/operations/[-0-9a-f]+\\?api-version=2025-05-01$`));
    expect(await raw(fake, 'GET', asyncUrl)).toMatchObject({ status: 200, body: { status: 'InProgress' } });
    await vi.waitFor(async () => expect(await raw(fake, 'GET', asyncUrl)).toMatchObject({ status: 200, body: { status: 'Succeeded' } }), {
      interval: 10,
    });

    fake.transitions.setDelays({ 'network.delete': 80 });
    const del = await raw(fake, 'DELETE', `${sub()}/resourceGroups/${rg}/providers/Microsoft.Network/publicIPAddresses/ip?api-version=2025-05-01`);
    expect(del.status).toBe(202);
    const monitor = String(del.headers.location);
    expect(monitor).toMatch(/\/operationResults\/[-0-9a-f]+\?api-version=2025-05-01$/);
    expect(String(del.headers['azure-asyncoperation'])).toMatch(/\/operations\/[-0-9a-f]+\?/);
    expect((await raw(fake, 'GET', monitor)).status).toBe(202);
    await vi.waitFor(async () => expect((await raw(fake, 'GET', monitor)).status).toBe(200), { interval: 10 });

    // DELETE of something absent: 204 at once; PATCH is not modelled and says so
    expect((await raw(fake, 'DELETE', `${sub()}/resourceGroups/${rg}/providers/Microsoft.Network/publicIPAddresses/ip?api-version=2025-05-01`)).status).toBe(204);
    expect(
      await raw(fake, 'PATCH', `${sub()}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines/vm?api-version=2026-03-01`, { tags: {} }),
    ).toMatchObject({ status: 501, body: { error: { code: 'NotImplementedInFake' } } });

    const groupDelete = await raw(fake, 'DELETE', `${sub()}/resourcegroups/${rg}?api-version=2025-04-01`);
    expect(groupDelete.status).toBe(202);
    expect(groupDelete.headers['azure-asyncoperation']).toBeUndefined();
    expect(String(groupDelete.headers.location)).toMatch(new RegExp(`${sub()}/operationresults/[-0-9a-f]+\\?api-version=2025-04-01$`));
  });

  test('an injected 429 is retried by the SDK after Retry-After', async () => {
    fake.throttleNext('resourceGroups.get', 1, 1);
    const started = Date.now();
    await expect(c.resources.resourceGroups.get(rg)).resolves.toMatchObject({ name: rg });
    const gets = fake.requests.filter((r) => r.operation === 'resourceGroups.get');
    expect(gets.map((r) => [r.status, r.code])).toEqual([
      [429, 'TooManyRequests'],
      [200, undefined],
    ]);
    expect((gets[1]?.at ?? 0) - (gets[0]?.at ?? 0)).toBeGreaterThanOrEqual(950);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);

    // also while polling an LRO: the compute poller retries a throttled status poll
    const net = await buildNetwork(c, rg, 't');
    fake.throttleNext('operations.status', 1, 1);
    await expect(c.compute.virtualMachines.beginCreateOrUpdateAndWait(rg, 'vm', vmSpec(net.nicId), c.poll)).resolves.toMatchObject({
      provisioningState: 'Succeeded',
    });
    expect(fake.requests.filter((r) => r.status === 429)).toHaveLength(2);
  });

  test('random 5xx are retried by the SDK; persistent ones surface as RestError', async () => {
    fake.faults.configure({ serverErrorRate: 0.5, seed: 42, only: ['resourceGroups.get'] });
    for (let i = 0; i < 8; i++) await expect(c.resources.resourceGroups.get(rg)).resolves.toMatchObject({ name: rg });
    const served = fake.faults.served['server-error'];
    expect(served).toBeGreaterThan(0);
    expect(fake.requests.filter((r) => r.operation === 'resourceGroups.get' && r.status === 500)).toHaveLength(served);
    fake.faults.configure({});

    const fragile = clients(fake, { maxRetries: 2 });
    fake.failNext('resourceGroups.get', armErrors.internal(503), 3);
    await expect(fragile.resources.resourceGroups.get(rg)).rejects.toMatchObject({ statusCode: 503, code: 'ServiceUnavailable' });
    await expect(fragile.resources.resourceGroups.get(rg)).resolves.toMatchObject({ name: rg });
  });
});
