/**
 * API errors and operation errors of the GCE fake, as the real SDK surfaces them: a GaxiosError
 * with the HTTP status and the raw JSON body (reason in error.errors[0].reason), and operations
 * that end DONE with error.errors[].
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGceFake, type GceFake } from '../index.js';
import { RecordingMachines, apiErrorOf, computeClients, operationOf, untilDone, type ComputeClients } from '../sdk-helpers.js';

const project = 'kiln-test';
const zone = 'europe-west1-b';
const debian = 'projects/debian-cloud/global/images/family/debian-12';

export function errorsSuite(): void {
  describe('GCE fake: errors through the SDK', () => {
    let fake: GceFake;
    let gce: ComputeClients;
    let machines: RecordingMachines;

    beforeAll(async () => {
      machines = new RecordingMachines();
      fake = await startGceFake({ machines });
      gce = computeClients(fake);
    });

    afterAll(async () => {
      await gce.close();
      await fake.close();
    });

    const instance = (name: string, extra: Record<string, unknown> = {}) => ({
      name,
      machineType: `zones/${zone}/machineTypes/e2-medium`,
      disks: [{ boot: true, autoDelete: true, initializeParams: { sourceImage: debian } }],
      networkInterfaces: [{ accessConfigs: [{ type: 'ONE_TO_ONE_NAT' }] }],
      ...extra,
    });

    it('surfaces notFound as a GaxiosError with the HTTP status and the API body', async () => {
      let thrown: unknown;
      await gce.images.get({ project, image: 'nope' }).catch((err: unknown) => (thrown = err));
      expect(thrown).toBeInstanceOf(Error);
      expect(thrown).toMatchObject({ status: 404, code: 404 });
      expect((thrown as Error).constructor.name).toBe('GaxiosError');
      const err = await apiErrorOf(() => gce.images.get({ project, image: 'nope' }));
      expect(err).toEqual({
        status: 404,
        reason: 'notFound',
        message: "The resource 'projects/kiln-test/global/images/nope' was not found",
        body: {
          error: {
            code: 404,
            message: "The resource 'projects/kiln-test/global/images/nope' was not found",
            errors: [{ domain: 'global', reason: 'notFound', message: "The resource 'projects/kiln-test/global/images/nope' was not found" }],
          },
        },
      });
      const family = await apiErrorOf(() => gce.images.getFromFamily({ project, family: 'none' }));
      expect(family.message).toBe("The resource 'projects/kiln-test/global/images/family/none' was not found");
      const op = await apiErrorOf(() => gce.zoneOperations.get({ project, zone, operation: 'operation-123' }));
      expect(op).toMatchObject({ status: 404, reason: 'notFound' });
    });

    it('answers alreadyExists (409) for a duplicate name', async () => {
      const fw = { name: 'kiln-dup', allowed: [{ IPProtocol: 'tcp', ports: ['22'] }], sourceRanges: ['198.51.100.0/24'] };
      await untilDone(gce, project, operationOf(await gce.firewalls.insert({ project, firewallResource: fw })));
      const dup = await apiErrorOf(() => gce.firewalls.insert({ project, firewallResource: fw }));
      expect(dup).toMatchObject({ status: 409, reason: 'alreadyExists', message: "The resource 'projects/kiln-test/global/firewalls/kiln-dup' already exists" });
      await untilDone(gce, project, operationOf(await gce.firewalls.delete({ project, firewall: 'kiln-dup' })));
    });

    it('refuses to delete an attached disk, then deletes it once detached', async () => {
      const op = operationOf(
        await gce.instances.insert({
          project,
          zone,
          instanceResource: instance('kiln-attached', {
            disks: [
              { boot: true, autoDelete: true, initializeParams: { sourceImage: debian } },
              { deviceName: 'data', autoDelete: false, initializeParams: { diskName: 'kiln-keep', diskSizeGb: 10 } },
            ],
          }),
        }),
      );
      await untilDone(gce, project, op);
      const inUse = await apiErrorOf(() => gce.disks.delete({ project, zone, disk: 'kiln-keep' }));
      expect(inUse).toMatchObject({
        status: 400,
        reason: 'resourceInUseByAnotherResource',
        message: `The disk resource 'projects/kiln-test/zones/${zone}/disks/kiln-keep' is already being used by 'projects/kiln-test/zones/${zone}/instances/kiln-attached'`,
      });
      await untilDone(gce, project, operationOf(await gce.instances.delete({ project, zone, instance: 'kiln-attached' })));
      const [kept] = await gce.disks.get({ project, zone, disk: 'kiln-keep' });
      expect(kept.users ?? []).toEqual([]);
      expect((await apiErrorOf(() => gce.disks.get({ project, zone, disk: 'kiln-attached' }))).status).toBe(404);
      await untilDone(gce, project, operationOf(await gce.disks.delete({ project, zone, disk: 'kiln-keep' })));
      expect(fake.state.isEmpty()).toBe(true);
    });

    it('validates requests with 400 invalid/required errors', async () => {
      const insert = (body: Record<string, unknown>) => apiErrorOf(() => gce.instances.insert({ project, zone, instanceResource: body }));
      expect(await insert(instance('Bad_Name'))).toMatchObject({
        status: 400,
        reason: 'invalid',
        message: "Invalid value for field 'resource.name': 'Bad_Name'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'",
      });
      expect(await insert(instance('kiln-labels', { labels: { 'kiln:run': 'x' } }))).toMatchObject({ status: 400, reason: 'invalid' });
      expect((await insert(instance('kiln-mt', { machineType: `zones/${zone}/machineTypes/e2-giant-3` }))).message).toContain(
        "Machine type with name 'e2-giant-3' does not exist",
      );
      expect((await insert(instance('kiln-img', { disks: [{ boot: true, initializeParams: { sourceImage: 'global/images/missing' } }] }))).message).toBe(
        "Invalid value for field 'resource.disks[0].initializeParams.sourceImage': 'global/images/missing'. The referenced image resource cannot be found.",
      );
      expect(
        (await insert(instance('kiln-small', { disks: [{ boot: true, initializeParams: { sourceImage: debian, diskSizeGb: 5 } }] }))).message,
      ).toContain('cannot be smaller than the image size (10 GB)');
      expect((await insert(instance('kiln-dtype', { disks: [{ boot: true, initializeParams: { sourceImage: debian, diskType: 'pd-ssd' } }] }))).message).toContain(
        'The URL is malformed.',
      );
      expect(await insert(instance('kiln-nodisk', { disks: [] }))).toMatchObject({ status: 400, reason: 'required' });
      expect(await apiErrorOf(() => gce.instances.get({ project, zone: 'nowhere', instance: 'x' }))).toMatchObject({ status: 400, reason: 'invalid' });
      expect(fake.state.live().instances).toEqual([]);
      expect(fake.state.live().disks).toEqual([]);
    });

    it('checks label and metadata fingerprints (412 conditionNotMet)', async () => {
      await untilDone(gce, project, operationOf(await gce.instances.insert({ project, zone, instanceResource: instance('kiln-fp') })));
      const [disk] = await gce.disks.get({ project, zone, disk: 'kiln-fp' });
      const stale = await apiErrorOf(() =>
        gce.disks.setLabels({ project, zone, resource: 'kiln-fp', zoneSetLabelsRequestResource: { labels: { a: 'b' }, labelFingerprint: 'AAAAAAAAAAA=' } }),
      );
      expect(stale).toMatchObject({ status: 412, reason: 'conditionNotMet' });
      const ok = operationOf(
        await gce.disks.setLabels({
          project,
          zone,
          resource: 'kiln-fp',
          zoneSetLabelsRequestResource: { labels: { a: 'b' }, labelFingerprint: disk.labelFingerprint },
        }),
      );
      await untilDone(gce, project, ok);
      const [relabelled] = await gce.disks.get({ project, zone, disk: 'kiln-fp' });
      expect(relabelled.labels).toEqual({ a: 'b' });
      expect(relabelled.labelFingerprint).not.toBe(disk.labelFingerprint);

      const [vm] = await gce.instances.get({ project, zone, instance: 'kiln-fp' });
      const badMeta = await apiErrorOf(() =>
        gce.instances.setMetadata({ project, zone, instance: 'kiln-fp', metadataResource: { fingerprint: 'stale', items: [] } }),
      );
      expect(badMeta.status).toBe(412);
      const items = [{ key: 'startup-script', value: 'echo hi' }];
      await untilDone(
        gce,
        project,
        operationOf(await gce.instances.setMetadata({ project, zone, instance: 'kiln-fp', metadataResource: { fingerprint: vm.metadata?.fingerprint, items } })),
      );
      const [after] = await gce.instances.get({ project, zone, instance: 'kiln-fp' });
      expect(after.metadata?.items?.map(({ key, value }) => ({ key, value }))).toEqual(items);
      await untilDone(gce, project, operationOf(await gce.instances.delete({ project, zone, instance: 'kiln-fp' })));
    });

    it('ends an operation with error.errors[] when a test makes it fail, without side effects', async () => {
      await untilDone(gce, project, operationOf(await gce.disks.insert({ project, zone, diskResource: { name: 'kiln-src', sizeGb: '10' } })));
      machines.calls.splice(0);
      fake.failOperations('images.insert', { code: 'QUOTA_EXCEEDED', message: "Quota 'IMAGES' exceeded.  Limit: 0.0 globally.", httpStatus: 403 });
      const op = operationOf(await gce.images.insert({ project, imageResource: { name: 'kiln-quota', sourceDisk: `zones/${zone}/disks/kiln-src` } }));
      expect(op.status).toBe('PENDING');
      const finished = await untilDone(gce, project, op);
      expect(finished).toMatchObject({
        status: 'DONE',
        httpErrorStatusCode: 403,
        httpErrorMessage: 'FORBIDDEN',
        error: { errors: [expect.objectContaining({ code: 'QUOTA_EXCEEDED', message: "Quota 'IMAGES' exceeded.  Limit: 0.0 globally." })] },
      });
      expect((await apiErrorOf(() => gce.images.get({ project, image: 'kiln-quota' }))).status).toBe(404);
      expect(machines.ops()).not.toContain('snapshotDisk');

      // Only the next call was affected.
      const retry = await untilDone(
        gce,
        project,
        operationOf(await gce.images.insert({ project, imageResource: { name: 'kiln-quota', sourceDisk: `zones/${zone}/disks/kiln-src` } })),
      );
      expect(retry.error).toBeFalsy();
      await untilDone(gce, project, operationOf(await gce.images.delete({ project, image: 'kiln-quota' })));
      await untilDone(gce, project, operationOf(await gce.disks.delete({ project, zone, disk: 'kiln-src' })));

      // A failed instance insert leaves neither the instance nor its disks.
      fake.failOperations('instances.insert', { code: 'ZONE_RESOURCE_POOL_EXHAUSTED', message: 'The zone does not have enough resources.' });
      fake.transitions.setDelays({ 'operation.running': 200 });
      const vmOp = operationOf(await gce.instances.insert({ project, zone, instanceResource: instance('kiln-pool') }));
      expect(fake.state.live().instances.map((i) => [i.name, i.status])).toEqual([['kiln-pool', 'PROVISIONING']]);
      fake.transitions.setDelays({ 'operation.running': 0 });
      const vmDone = await untilDone(gce, project, vmOp);
      expect(vmDone.error?.errors?.[0]?.code).toBe('ZONE_RESOURCE_POOL_EXHAUSTED');
      expect(vmDone.httpErrorStatusCode).toBe(400);
      expect(fake.state.isEmpty()).toBe(true);
    });

    it('returns from wait at the bound with an operation not yet DONE', async () => {
      fake.setWaitBound(20);
      fake.transitions.setDelays({ 'firewall.applied': 200 });
      try {
        const op = operationOf(
          await gce.firewalls.insert({ project, firewallResource: { name: 'kiln-slow', allowed: [{ IPProtocol: 'icmp' }] } }),
        );
        const [early] = await gce.globalOperations.wait({ project, operation: String(op.name) });
        expect(early.status).toBe('RUNNING');
        expect(early.startTime).toBeTruthy();
        expect((await apiErrorOf(() => gce.firewalls.get({ project, firewall: 'kiln-slow' }))).status).toBe(404);
        const [byId] = await gce.globalOperations.get({ project, operation: String(op.id) });
        expect(byId.name).toBe(op.name);
        const doneOp = await untilDone(gce, project, op);
        expect(doneOp.endTime).toBeTruthy();
        const [fw] = await gce.firewalls.get({ project, firewall: 'kiln-slow' });
        expect(fw.sourceRanges).toEqual(['0.0.0.0/0']);
      } finally {
        fake.setWaitBound(120_000);
        fake.transitions.setDelays({ 'firewall.applied': 0 });
      }
      await untilDone(gce, project, operationOf(await gce.firewalls.delete({ project, firewall: 'kiln-slow' })));
    });

    it('runs a delete issued during insert after the insert, leaving nothing', async () => {
      fake.transitions.setDelays({ 'instance.staging': 30 });
      try {
        const insert = operationOf(await gce.instances.insert({ project, zone, instanceResource: instance('kiln-race') }));
        const del = operationOf(await gce.instances.delete({ project, zone, instance: 'kiln-race' }));
        const [insertDone, deleteDone] = await Promise.all([untilDone(gce, project, insert), untilDone(gce, project, del)]);
        expect(insertDone.error).toBeFalsy();
        expect(deleteDone.error).toBeFalsy();
        expect(Date.parse(String(deleteDone.endTime))).toBeGreaterThanOrEqual(Date.parse(String(insertDone.endTime)));
        expect(fake.state.isEmpty()).toBe(true);
      } finally {
        fake.transitions.setDelays({ 'instance.staging': 0 });
      }
    });

    it('requires a bearer token and answers unknown paths with 404', async () => {
      const noAuth = await fetch(`${fake.url}/compute/v1/projects/${project}/global/images`);
      expect(noAuth.status).toBe(401);
      expect(await noAuth.json()).toMatchObject({ error: { code: 401, status: 'UNAUTHENTICATED', errors: [{ reason: 'required' }] } });
      const unknown = await fetch(`${fake.url}/compute/v1/projects/${project}/global/snapshots`, { headers: { authorization: 'Bearer x' } });
      expect(unknown.status).toBe(404);
    });
  });
}
