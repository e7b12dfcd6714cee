/**
 * The GCE target end to end: `kiln build images/sourcegraph.yaml --target gcp --size xs` through
 * the CLI against the Compute Engine fake backed by QEMU VMs, provisioning for real from the
 * stand-in artifact server; then an instance made from the root and data images boots and is
 * checked over SSH. kiln finds the fake through KILN_GCE_ENDPOINT and its credentials through
 * Application Default Credentials (a workload identity federation file exchanged at a stand-in STS).
 */
import { InstancesClient } from '@google-cloud/compute';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { done, notYet, waitFor } from '../../src/core/wait.js';
import { generateKeyPair, type SshSession } from '../../src/ssh/index.js';
import { startGceFake, type GceFake } from '../fakes/gce/index.js';
import { startStsFake, type StsFake } from '../fakes/gce/sts.js';
import { checkAppliance, connectToInstance, expectCleanSuccess, startCloudWorld, type BuildRun, type CloudWorld } from './support/cloud-world.js';

const isRoot = process.getuid?.() === 0;
const PROJECT = 'kiln-e2e';
const ZONE = 'us-central1-f';
const USER = 'sourcegraph';

describe.skipIf(!isRoot)('kiln build --target gcp against the VM-backed GCE fake, then booting the images', () => {
  let world: CloudWorld;
  let fake: GceFake;
  let sts: StsFake;
  let run: BuildRun;
  let instances: InstancesClient | undefined;
  let session: SshSession | undefined;

  beforeAll(async () => {
    world = await startCloudWorld('gcp');
    // Host keys come from the guest's console only: no synthetic ones that the VM would not match.
    fake = await startGceFake({ machines: world.machines, synthesizeHostKeys: false });
    sts = await startStsFake();
    run = await world.build('gcp', {
      KILN_GCE_ENDPOINT: fake.url,
      GOOGLE_APPLICATION_CREDENTIALS: await sts.adcFile(world.work),
      GOOGLE_CLOUD_PROJECT: PROJECT,
    });
    console.log(`gcp: kiln build took ${run.seconds}s (${JSON.stringify(run.manifest.builds[0]?.timingsMs)})`);
  });

  afterAll(async () => {
    session?.close();
    await instances?.close();
    await fake?.close();
    await sts?.close();
    await world?.close();
  });

  it('makes the root and data images and leaves nothing else behind', async () => {
    const build = await expectCleanSuccess(world, run, 'gcp');
    expect(build?.artifacts.map((a) => a.disk).sort()).toEqual(['data', 'root']);
    expect(sts.exchanges).toBeGreaterThan(0);
    expect(fake.state.instances.size).toBe(0);
    expect(fake.state.disks.size).toBe(0);
    expect(fake.state.firewalls.size).toBe(0);
  });

  it('boots an instance of the images: first boot deploys, versions pinned, data on the kiln-data disk', async () => {
    const image = (disk: string) => run.manifest.builds[0]?.artifacts.find((a) => a.disk === disk)?.id ?? '';
    const started = Date.now();
    instances = new InstancesClient(fake.clientOptions({ projectId: PROJECT }));
    const key = generateKeyPair('customer');
    const name = 'customer-appliance';
    await instances.insert({
      project: PROJECT,
      zone: ZONE,
      instanceResource: {
        name,
        machineType: `zones/${ZONE}/machineTypes/n2-standard-8`,
        disks: [
          { boot: true, autoDelete: true, initializeParams: { sourceImage: image('root') } },
          { boot: false, autoDelete: true, deviceName: 'kiln-data', initializeParams: { sourceImage: image('data') } },
        ],
        networkInterfaces: [{ network: 'global/networks/default', accessConfigs: [{ type: 'ONE_TO_ONE_NAT', name: 'External NAT' }] }],
        metadata: { items: [{ key: 'ssh-keys', value: `${USER}:${key.publicKey}` }] },
      },
    });
    try {
      const address = await waitFor(
        async () => {
          const [found] = await instances!.get({ project: PROJECT, zone: ZONE, instance: name }).catch(() => [undefined]);
          const ip = found?.networkInterfaces?.[0]?.accessConfigs?.[0]?.natIP;
          return found?.status === 'RUNNING' && ip ? done(ip) : notYet(found?.status ?? 'not visible');
        },
        { what: `instance ${name} to run`, timeoutMs: 5 * 60_000, initialDelayMs: 500 },
      );
      const readConsole = async () => (await instances!.getSerialPortOutput({ project: PROJECT, zone: ZONE, instance: name }))[0].contents ?? '';
      session = await connectToInstance(world, { address, user: USER, privateKey: key.privateKey, readConsole });
      await checkAppliance(session, { dataDevice: /^\/dev\/sd[a-z]$/, user: USER, publicKey: key.publicKey });
      // The data disk carries its device name the way GCE presents it.
      expect((await session.run('readlink -f /dev/disk/by-id/scsi-0Google_PersistentDisk_kiln-data')).stdoutTail.trim()).toBe(
        (await session.run('findmnt -n -o SOURCE /mnt/data')).stdoutTail.trim(),
      );
      console.log(`gcp: instance of the images booted and checked in ${Math.round((Date.now() - started) / 1000)}s`);
    } finally {
      session?.close();
      session = undefined;
      await instances.delete({ project: PROJECT, zone: ZONE, instance: name });
    }
  });
});
