/**
 * The inspection API (state.live / isEmpty / pendingOperations / requests) that cleanup tests rely
 * on, and list semantics (filter, paging) as the SDK drives them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGceFake, type GceFake } from '../index.js';
import { apiErrorOf, computeClients, operationOf, until, untilDone, type ComputeClients } from '../sdk-helpers.js';

const project = 'kiln-inspect';
const zone = 'us-west1-a';

export function inspectionSuite(): void {
  describe('GCE fake: inspection API and lists', () => {
    let fake: GceFake;
    let gce: ComputeClients;

    beforeAll(async () => {
      fake = await startGceFake({ delays: { 'image.ready': 5 } });
      gce = computeClients(fake);
    });

    afterAll(async () => {
      await gce.close();
      await fake.close();
    });

    it('lists every live resource until it is deleted', async () => {
      expect(fake.state.live()).toEqual({ instances: [], disks: [], images: [], firewalls: [] });
      fake.transitions.setDelays({ 'operation.running': 20 });
      const ops = [
        operationOf(
          await gce.instances.insert({
            project,
            zone,
            instanceResource: {
              name: 'kiln-r9-vm',
              machineType: `zones/${zone}/machineTypes/n2-standard-2`,
              disks: [
                { boot: true, autoDelete: true, initializeParams: { sourceImage: 'projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64' } },
                { autoDelete: false, deviceName: 'data', initializeParams: { diskName: 'kiln-r9-data', diskSizeGb: 30 } },
              ],
              networkInterfaces: [{ accessConfigs: [{ type: 'ONE_TO_ONE_NAT' }] }],
            },
          }),
        ),
        operationOf(
          await gce.firewalls.insert({ project, firewallResource: { name: 'kiln-r9-ssh', allowed: [{ IPProtocol: 'tcp', ports: ['22'] }], sourceRanges: ['10.0.0.1/32'] } }),
        ),
      ];
      expect(fake.state.pendingOperations().map((o) => o.operationType)).toEqual(['insert', 'insert']);
      fake.transitions.setDelays({ 'operation.running': 0 });
      await Promise.all(ops.map((op) => untilDone(gce, project, op)));
      expect(fake.state.pendingOperations()).toEqual([]);

      const live = fake.state.live();
      expect(live.instances).toEqual([{ project, zone, name: 'kiln-r9-vm', status: 'RUNNING', natIP: expect.stringMatching(/^127\.0\.20\./) }]);
      expect(live.disks.map((d) => d.name).sort()).toEqual(['kiln-r9-data', 'kiln-r9-vm']);
      expect(live.firewalls).toEqual([{ project, name: 'kiln-r9-ssh' }]);
      expect(live.images).toEqual([]);

      await untilDone(gce, project, operationOf(await gce.instances.stop({ project, zone, instance: 'kiln-r9-vm' })));
      await untilDone(gce, project, operationOf(await gce.images.insert({ project, imageResource: { name: 'kiln-r9-img', sourceDisk: `zones/${zone}/disks/kiln-r9-vm`, labels: { 'kiln-run': 'r9' } } })));
      expect(fake.state.live().images).toEqual([{ project, name: 'kiln-r9-img', status: 'READY', family: undefined }]);

      await untilDone(gce, project, operationOf(await gce.instances.delete({ project, zone, instance: 'kiln-r9-vm' })));
      // The data disk was not autoDelete: it is left, detached.
      expect(fake.state.live().disks).toEqual([{ project, zone, name: 'kiln-r9-data', status: 'READY', users: [] }]);
      expect(fake.state.isEmpty()).toBe(false);
      for (const op of [
        operationOf(await gce.disks.delete({ project, zone, disk: 'kiln-r9-data' })),
        operationOf(await gce.images.delete({ project, image: 'kiln-r9-img' })),
        operationOf(await gce.firewalls.delete({ project, firewall: 'kiln-r9-ssh' })),
      ]) {
        await untilDone(gce, project, op);
      }
      expect(fake.state.isEmpty()).toBe(true);
      expect(fake.requests.filter((r) => r.method.endsWith('.delete')).map((r) => r.status)).toEqual([200, 200, 200, 200]);
    });

    it('filters and pages lists the way the SDK asks for them', async () => {
      const names = ['kiln-a1-img', 'kiln-a2-img', 'other-img'];
      for (const name of names) {
        const op = operationOf(
          await gce.images.insert({
            project,
            imageResource: { name, sourceImage: 'projects/debian-cloud/global/images/debian-12-bookworm-v20250311', labels: { 'kiln-run': name.startsWith('kiln') ? 'a' : 'b' } },
          }),
        );
        await untilDone(gce, project, op);
      }
      await until(() => gce.images.get({ project, image: 'other-img' }), ([i]) => i.status === 'READY', 'image ready');

      const [byLabel] = await gce.images.list({ project, filter: 'labels.kiln-run = a' });
      expect(byLabel.map((i) => i.name)).toEqual(['kiln-a1-img', 'kiln-a2-img']);
      const [byRegex] = await gce.images.list({ project, filter: '(name eq "kiln-a.*") (status = READY)' });
      expect(byRegex.map((i) => i.name)).toEqual(['kiln-a1-img', 'kiln-a2-img']);
      const [negated] = await gce.images.list({ project, filter: 'labels.kiln-run != a' });
      expect(negated.map((i) => i.name)).toEqual(['other-img']);

      const paged: string[] = [];
      for await (const image of gce.images.listAsync({ project, maxResults: 1, orderBy: 'creationTimestamp desc' })) paged.push(String(image.name));
      expect(paged).toEqual(['other-img', 'kiln-a2-img', 'kiln-a1-img']);
      expect(fake.requests.filter((r) => r.method === 'images.list' && r.path.includes('pageToken')).length).toBe(2);

      const [publicUbuntu] = await gce.images.list({ project: 'ubuntu-os-cloud', filter: 'family = ubuntu-2404-lts-amd64' });
      expect(publicUbuntu).toHaveLength(3);
      expect(publicUbuntu.find((i) => i.name === 'ubuntu-2404-noble-amd64-v20250115')?.deprecated?.state).toBe('DEPRECATED');

      expect(await apiErrorOf(() => gce.images.list({ project, filter: 'name > 3' }))).toMatchObject({ status: 400, reason: 'invalid' });
      expect(await apiErrorOf(() => gce.images.list({ project, orderBy: 'status' }))).toMatchObject({ status: 400, reason: 'invalid' });

      for (const name of names) await untilDone(gce, project, operationOf(await gce.images.delete({ project, image: name })));
      expect(fake.state.live().images).toEqual([]);
    });

    it('lists operations by target and status, holds an operation PENDING when asked, and aggregates over zones', async () => {
      const release: Array<() => void> = [];
      const remove = fake.intercept('firewalls.insert', () => ({ hold: new Promise<void>((resolve) => release.push(resolve)) }));
      const held = operationOf(await gce.firewalls.insert({ project, firewallResource: { name: 'kiln-h1-ssh', allowed: [{ IPProtocol: 'tcp' }], sourceRanges: ['10.0.0.1/32'] } }));
      remove();
      const other = operationOf(await gce.firewalls.insert({ project, firewallResource: { name: 'kiln-h1-ssh2', allowed: [{ IPProtocol: 'tcp' }], sourceRanges: ['10.0.0.1/32'] } }));
      await untilDone(gce, project, other);
      const target = `projects/${project}/global/firewalls/kiln-h1-ssh`;
      const [running] = await gce.globalOperations.list({ project, filter: `(targetLink : "${target}") (status != "DONE")` });
      // `:` is a substring match: the exact name is the caller's to check.
      expect(running.map((o) => [o.name, o.status])).toEqual([[held.name, 'PENDING']]);
      const [both] = await gce.globalOperations.list({ project, filter: `targetLink : "${target}"` });
      expect(both.map((o) => o.targetLink?.split('/').pop()).sort()).toEqual(['kiln-h1-ssh', 'kiln-h1-ssh2']);
      expect(fake.state.live().firewalls.map((f) => f.name)).toEqual(['kiln-h1-ssh2']);
      release.forEach((r) => r());
      await untilDone(gce, project, held);
      expect((await gce.globalOperations.list({ project, filter: `(targetLink : "${target}") (status != "DONE")` }))[0]).toEqual([]);
      const [zonal] = await gce.zoneOperations.list({ project, zone });
      expect(zonal.every((o) => o.zone?.endsWith(`/zones/${zone}`))).toBe(true);

      for (const [z, name] of [[zone, 'kiln-a1-disk'], ['europe-west1-b', 'kiln-a2-disk'], [zone, 'other-disk']] as const) {
        await untilDone(gce, project, operationOf(await gce.disks.insert({ project, zone: z, diskResource: { name, sizeGb: '10', labels: name.startsWith('kiln') ? { 'kiln-run': 'a' } : {} } })));
      }
      const byZone: Record<string, string[]> = {};
      for await (const [scope, list] of gce.disks.aggregatedListAsync({ project, filter: 'labels.kiln-run:*' })) byZone[scope] = (list.disks ?? []).map((d) => String(d.name));
      expect(byZone).toEqual({ [`zones/${zone}`]: ['kiln-a1-disk'], 'zones/europe-west1-b': ['kiln-a2-disk'] });
      const instances: unknown[] = [];
      for await (const [, list] of gce.instances.aggregatedListAsync({ project })) instances.push(...(list.instances ?? []));
      expect(instances).toEqual([]);

      for (const op of [
        ...(['kiln-a1-disk', 'other-disk'] as const).map(async (disk) => operationOf(await gce.disks.delete({ project, zone, disk }))),
        (async () => operationOf(await gce.disks.delete({ project, zone: 'europe-west1-b', disk: 'kiln-a2-disk' })))(),
        (async () => operationOf(await gce.firewalls.delete({ project, firewall: 'kiln-h1-ssh' })))(),
        (async () => operationOf(await gce.firewalls.delete({ project, firewall: 'kiln-h1-ssh2' })))(),
      ]) {
        await untilDone(gce, project, await op);
      }
      expect(fake.state.isEmpty()).toBe(true);
    });

    it('resolves a family to its newest non-deprecated image', async () => {
      const family = { project: 'ubuntu-os-cloud', family: 'ubuntu-2404-lts-amd64' };
      expect((await gce.images.getFromFamily(family))[0].name).toBe('ubuntu-2404-noble-amd64-v20250313');
      await untilDone(
        gce,
        'ubuntu-os-cloud',
        operationOf(await gce.images.deprecate({ project: 'ubuntu-os-cloud', image: 'ubuntu-2404-noble-amd64-v20250313', deprecationStatusResource: { state: 'OBSOLETE' } })),
      );
      expect((await gce.images.getFromFamily(family))[0].name).toBe('ubuntu-2404-noble-amd64-v20250214');
      const obsolete = await apiErrorOf(() =>
        gce.disks.insert({ project, zone, diskResource: { name: 'kiln-obsolete', sourceImage: 'projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20250313' } }),
      );
      expect(obsolete.message).toContain('is obsolete');
      await untilDone(
        gce,
        'ubuntu-os-cloud',
        operationOf(await gce.images.deprecate({ project: 'ubuntu-os-cloud', image: 'ubuntu-2404-noble-amd64-v20250313', deprecationStatusResource: { state: 'ACTIVE' } })),
      );
      const [restored] = await gce.images.getFromFamily(family);
      expect(restored.name).toBe('ubuntu-2404-noble-amd64-v20250313');
      expect(restored.deprecated).toBeFalsy();
    });
  });
}
