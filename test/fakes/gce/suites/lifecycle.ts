/**
 * A whole image build against the GCE fake with the real @google-cloud/compute clients: base image
 * from a family, firewall, instance with boot + data disks, wait, stop, images from both disks,
 * IAM, deprecation, and every delete, ending with nothing live.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startGceFake, type GceFake } from '../index.js';
import {
  RecordingMachines,
  apiErrorOf,
  computeClients,
  operationOf,
  until,
  untilDone,
  type ComputeClients,
} from '../sdk-helpers.js';

const project = 'kiln-test';
const zone = 'us-central1-a';
const sshKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG1vY2sta2V5LWZvci1raWxuLXRlc3Rz kiln@test';

export function lifecycleSuite(): void {
  describe('GCE fake: image build lifecycle through the SDK', () => {
    let fake: GceFake;
    let gce: ComputeClients;
    let machines: RecordingMachines;

    // One fake and one set of clients per file: constructing the SDK clients is the slow part.
    beforeAll(async () => {
      machines = new RecordingMachines();
      fake = await startGceFake({
        machines,
        delays: { 'operation.running': 2, 'instance.staging': 5, 'instance.running': 5, 'image.ready': 100, 'guest.hostkeys': 10 },
      });
      gce = computeClients(fake);
    });

    afterAll(async () => {
      await gce.close();
      await fake.close();
    });

    beforeEach(() => {
      machines.calls.splice(0);
      machines.holdStops = false;
    });

    it('bakes images from a running instance and cleans up everything', async () => {
      // Base image: newest non-deprecated image of the family.
      const [base] = await gce.images.getFromFamily({ project: 'ubuntu-os-cloud', family: 'ubuntu-2404-lts-amd64' });
      expect(base.name).toBe('ubuntu-2404-noble-amd64-v20250313');
      expect(base.status).toBe('READY');
      expect(base.selfLink).toBe(
        'https://www.googleapis.com/compute/v1/projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20250313',
      );
      expect(base.id).toMatch(/^\d{19}$/);

      // Firewall limited to the builder's address.
      const fwOp = operationOf(
        await gce.firewalls.insert({
          project,
          firewallResource: {
            name: 'kiln-run1-ssh',
            network: 'global/networks/default',
            sourceRanges: ['203.0.113.7/32'],
            targetTags: ['kiln-run1'],
            allowed: [{ IPProtocol: 'tcp', ports: ['22'] }],
          },
        }),
      );
      expect(fwOp.status).toBe('PENDING');
      expect(fwOp.zone).toBeFalsy();
      expect((await untilDone(gce, project, fwOp)).error).toBeFalsy();
      const [fw] = await gce.firewalls.get({ project, firewall: 'kiln-run1-ssh' });
      expect(fw).toMatchObject({
        sourceRanges: ['203.0.113.7/32'],
        targetTags: ['kiln-run1'],
        allowed: [{ IPProtocol: 'tcp', ports: ['22'] }],
        direction: 'INGRESS',
        network: 'https://www.googleapis.com/compute/v1/projects/kiln-test/global/networks/default',
      });

      // Instance with a boot disk from the image and a data disk.
      const insertOp = operationOf(
        await gce.instances.insert({
          project,
          zone,
          instanceResource: {
            name: 'kiln-run1-builder',
            machineType: `zones/${zone}/machineTypes/e2-standard-4`,
            disks: [
              {
                boot: true,
                autoDelete: true,
                initializeParams: {
                  sourceImage: base.selfLink,
                  diskSizeGb: 20,
                  diskType: `zones/${zone}/diskTypes/pd-balanced`,
                  labels: { 'kiln-run': 'run1' },
                },
              },
              {
                deviceName: 'data',
                autoDelete: true,
                initializeParams: { diskName: 'kiln-run1-data', diskSizeGb: 50, diskType: `zones/${zone}/diskTypes/pd-ssd` },
              },
            ],
            networkInterfaces: [{ network: 'global/networks/default', accessConfigs: [{ type: 'ONE_TO_ONE_NAT', name: 'External NAT' }] }],
            tags: { items: ['kiln-run1'] },
            metadata: {
              items: [
                { key: 'ssh-keys', value: `kiln:${sshKey}` },
                { key: 'enable-guest-attributes', value: 'TRUE' },
              ],
            },
            labels: { 'kiln-run': 'run1', 'kiln-build': 'sourcegraph-gcp' },
          },
        }),
      );
      expect(insertOp).toMatchObject({ status: 'PENDING', operationType: 'insert', progress: 0 });
      expect(insertOp.zone).toBe(`https://www.googleapis.com/compute/v1/projects/${project}/zones/${zone}`);
      expect(insertOp.targetLink).toMatch(/\/instances\/kiln-run1-builder$/);
      const [provisioning] = await gce.instances.get({ project, zone, instance: 'kiln-run1-builder' });
      expect(['PROVISIONING', 'STAGING']).toContain(provisioning.status);

      const insertDone = await untilDone(gce, project, insertOp);
      expect(insertDone).toMatchObject({ status: 'DONE', progress: 100 });
      expect(insertDone.error).toBeFalsy();
      const [instance] = await gce.instances.get({ project, zone, instance: 'kiln-run1-builder' });
      expect(instance.status).toBe('RUNNING');
      const natIP = instance.networkInterfaces?.[0]?.accessConfigs?.[0]?.natIP;
      expect(natIP).toMatch(/^127\.0\.20\.\d+$/);
      expect(instance.disks?.map((d) => [d.deviceName, d.boot, d.autoDelete])).toEqual([
        ['persistent-disk-0', true, true],
        ['data', false, true],
      ]);
      expect(instance.tags?.items).toEqual(['kiln-run1']);
      expect(instance.labels).toEqual({ 'kiln-run': 'run1', 'kiln-build': 'sourcegraph-gcp' });

      // The backend made the disks (root from the image's snapshot) and booted with the ssh-keys user.
      const created = machines.calls.filter((c) => c.op === 'createDisk');
      expect(created).toEqual([
        expect.objectContaining({ sizeGb: 20, fromSnapshotId: 'public-ubuntu-os-cloud-ubuntu-2404-noble-amd64-v20250313' }),
        expect.objectContaining({ sizeGb: 50, fromSnapshotId: undefined }),
      ]);
      const start = machines.calls.find((c) => c.op === 'startMachine');
      expect(start?.op === 'startMachine' && start.spec).toMatchObject({
        sshUser: 'kiln',
        sshPublicKey: sshKey.split(' ').slice(0, 2).join(' '),
        address: natIP,
        cpus: 4,
        memoryMiB: 16384,
      });

      const [bootDisk] = await gce.disks.get({ project, zone, disk: 'kiln-run1-builder' });
      expect(bootDisk).toMatchObject({ status: 'READY', sizeGb: '20', sourceImage: base.selfLink, labels: { 'kiln-run': 'run1' } });
      expect(bootDisk.users).toEqual([instance.selfLink]);

      // Host keys appear as guest attributes some time after boot; console output is readable.
      const [attrs] = await until(
        () => gce.instances.getGuestAttributes({ project, zone, instance: 'kiln-run1-builder', queryPath: 'hostkeys/' }).catch(() => [undefined] as const),
        ([a]) => a !== undefined,
        'host keys',
      );
      expect(attrs?.queryValue?.items?.[0]).toMatchObject({ namespace: 'hostkeys', key: 'ssh-ed25519' });
      expect(attrs?.queryValue?.items?.[0]?.value).toMatch(/^AAAAC3NzaC1lZDI1NTE5/);
      const [serial] = await gce.instances.getSerialPortOutput({ project, zone, instance: 'kiln-run1-builder', port: 1 });
      expect(serial.contents).toBe(`fake console of ${start?.op === 'startMachine' ? start.spec.id : ''}\n`);
      expect(serial.next).toBe(String(serial.contents?.length));

      // Images cannot be taken while the instance runs (unless forced).
      const busy = await apiErrorOf(() =>
        gce.images.insert({ project, imageResource: { name: 'kiln-run1-root', sourceDisk: bootDisk.selfLink } }),
      );
      expect(busy).toMatchObject({ status: 400, reason: 'resourceInUseByAnotherResource' });

      // Stop, then capture both disks.
      const stopOp = operationOf(await gce.instances.stop({ project, zone, instance: 'kiln-run1-builder' }));
      await untilDone(gce, project, stopOp);
      const [stopped] = await gce.instances.get({ project, zone, instance: 'kiln-run1-builder' });
      expect(stopped.status).toBe('TERMINATED');
      expect(stopped.networkInterfaces?.[0]?.accessConfigs?.[0]?.natIP).toBeFalsy();

      machines.holdSnapshots = true;
      const rootOp = operationOf(
        await gce.images.insert({
          project,
          imageResource: {
            name: 'kiln-run1-root',
            sourceDisk: `zones/${zone}/disks/kiln-run1-builder`,
            family: 'kiln-sourcegraph',
            labels: { 'kiln-run': 'run1' },
            storageLocations: ['us'],
          },
        }),
      );
      const dataOp = operationOf(
        await gce.images.insert({
          project,
          imageResource: { name: 'kiln-run1-data', sourceDisk: `projects/${project}/zones/${zone}/disks/kiln-run1-data`, family: 'kiln-sourcegraph-data' },
        }),
      );
      const [pending] = await gce.images.get({ project, image: 'kiln-run1-root' });
      expect(pending.status).toBe('PENDING');
      machines.releaseSnapshots();
      await Promise.all([untilDone(gce, project, rootOp), untilDone(gce, project, dataOp)]);
      const [root] = await gce.images.get({ project, image: 'kiln-run1-root' });
      expect(root).toMatchObject({ status: 'READY', family: 'kiln-sourcegraph', diskSizeGb: '20', storageLocations: ['us'] });
      expect(root.sourceDisk).toBe(bootDisk.selfLink);
      expect(machines.calls.filter((c) => c.op === 'snapshotDisk')).toHaveLength(2);
      const [fromFamily] = await gce.images.getFromFamily({ project, family: 'kiln-sourcegraph' });
      expect(fromFamily.name).toBe('kiln-run1-root');

      // Share, then deprecate.
      const [policy] = await gce.images.setIamPolicy({
        project,
        resource: 'kiln-run1-root',
        globalSetPolicyRequestResource: { policy: { bindings: [{ role: 'roles/compute.imageUser', members: ['user:ops@example.com'] }] } },
      });
      expect(policy.etag).toBeTruthy();
      const [readBack] = await gce.images.getIamPolicy({ project, resource: 'kiln-run1-root' });
      expect(readBack.bindings).toEqual([expect.objectContaining({ role: 'roles/compute.imageUser', members: ['user:ops@example.com'] })]);
      expect(readBack.etag).toBe(policy.etag);

      const depOp = operationOf(
        await gce.images.deprecate({
          project,
          image: 'kiln-run1-root',
          deprecationStatusResource: { state: 'DEPRECATED', replacement: `global/images/kiln-run1-data` },
        }),
      );
      await untilDone(gce, project, depOp);
      const [deprecated] = await gce.images.get({ project, image: 'kiln-run1-root' });
      expect(deprecated.deprecated).toMatchObject({ state: 'DEPRECATED', replacement: expect.stringMatching(/\/images\/kiln-run1-data$/) });
      expect((await apiErrorOf(() => gce.images.getFromFamily({ project, family: 'kiln-sourcegraph' }))).status).toBe(404);

      // Clean up: the instance takes its autoDelete disks with it.
      expect(fake.state.live().instances).toHaveLength(1);
      const deletes = [
        operationOf(await gce.instances.delete({ project, zone, instance: 'kiln-run1-builder' })),
        operationOf(await gce.firewalls.delete({ project, firewall: 'kiln-run1-ssh' })),
        operationOf(await gce.images.delete({ project, image: 'kiln-run1-root' })),
        operationOf(await gce.images.delete({ project, image: 'kiln-run1-data' })),
      ];
      const results = await Promise.all(deletes.map((op) => untilDone(gce, project, op)));
      expect(results.map((r) => Boolean(r.error))).toEqual([false, false, false, false]);
      expect(fake.state.live()).toEqual({ instances: [], disks: [], images: [], firewalls: [] });
      expect(fake.state.isEmpty()).toBe(true);
      expect(machines.ops()).toEqual(expect.arrayContaining(['destroyMachine', 'deleteDisk', 'deleteSnapshot']));
      expect(machines.calls.filter((c) => c.op === 'deleteDisk')).toHaveLength(2);
      expect((await apiErrorOf(() => gce.instances.get({ project, zone, instance: 'kiln-run1-builder' }))).reason).toBe('notFound');
    });

    it('keeps an instance STOPPING until the machine backend has stopped it', async () => {
      const op = operationOf(
        await gce.instances.insert({
          project,
          zone,
          instanceResource: {
            name: 'kiln-stop',
            machineType: `zones/${zone}/machineTypes/e2-small`,
            disks: [{ boot: true, autoDelete: true, initializeParams: { sourceImage: 'projects/debian-cloud/global/images/family/debian-12' } }],
            networkInterfaces: [{}],
          },
        }),
      );
      await untilDone(gce, project, op);
      machines.holdStops = true;
      const stopOp = operationOf(await gce.instances.stop({ project, zone, instance: 'kiln-stop' }));
      await until(() => Promise.resolve(machines.ops()), (ops) => ops.includes('stopMachine'), 'stopMachine call');
      const [stopping] = await gce.instances.get({ project, zone, instance: 'kiln-stop' });
      expect(stopping.status).toBe('STOPPING');
      const [notDone] = await gce.zoneOperations.get({ project, zone, operation: String(stopOp.name) });
      expect(notDone.status).toBe('RUNNING');
      machines.releaseStops();
      await untilDone(gce, project, stopOp);
      const [stopped] = await gce.instances.get({ project, zone, instance: 'kiln-stop' });
      expect(stopped.status).toBe('TERMINATED');

      // start gives it a new ephemeral address; no access config means no natIP at all.
      const startOp = operationOf(await gce.instances.start({ project, zone, instance: 'kiln-stop' }));
      await untilDone(gce, project, startOp);
      const [started] = await gce.instances.get({ project, zone, instance: 'kiln-stop' });
      expect(started.status).toBe('RUNNING');
      expect(started.networkInterfaces?.[0]?.accessConfigs ?? []).toEqual([]);
      expect(machines.calls.filter((c) => c.op === 'startMachine')).toHaveLength(2);
      const [disk] = await gce.disks.get({ project, zone, disk: 'kiln-stop' });
      expect(disk.sourceImage).toMatch(/\/debian-cloud\/global\/images\/debian-12-bookworm-v20250311$/);

      await untilDone(gce, project, operationOf(await gce.instances.delete({ project, zone, instance: 'kiln-stop' })));
      expect(fake.state.isEmpty()).toBe(true);
    });
  });
}
