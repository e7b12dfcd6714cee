/**
 * The AWS target end to end: `kiln build images/sourcegraph.yaml --target aws --size xs` through
 * the CLI against the EC2 fake backed by QEMU VMs, provisioning for real from the stand-in
 * artifact server; then an instance launched from one of the published AMI copies boots and is
 * checked over SSH. The only way to the fake is the SDK's own AWS_ENDPOINT_URL_EC2.
 */
import { DescribeInstancesCommand, EC2Client, ImportKeyPairCommand, RunInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { done, notYet, waitFor } from '../../src/core/wait.js';
import { generateKeyPair, type SshSession } from '../../src/ssh/index.js';
import { startEc2Fake, type Ec2Fake } from '../fakes/ec2/index.js';
import { CREDENTIALS } from '../fakes/ec2/testkit.js';
import { checkAppliance, connectToInstance, expectCleanSuccess, startCloudWorld, type BuildRun, type CloudWorld } from './support/cloud-world.js';

const isRoot = process.getuid?.() === 0;
const REGION = 'us-west-2';
const PUBLISH_REGIONS = ['us-east-1', 'us-east-2', 'us-west-1', 'eu-west-1', 'eu-central-1', 'ap-southeast-1'];
const LAUNCH_REGION = 'eu-west-1';

describe.skipIf(!isRoot)('kiln build --target aws against the VM-backed EC2 fake, then booting the AMI', () => {
  let world: CloudWorld;
  let fake: Ec2Fake;
  let run: BuildRun;
  let ec2: EC2Client | undefined;
  let session: SshSession | undefined;

  beforeAll(async () => {
    world = await startCloudWorld('aws');
    fake = await startEc2Fake({ machines: world.machines });
    run = await world.build('aws', {
      AWS_ENDPOINT_URL_EC2: fake.url,
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      AWS_REGION: REGION,
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    });
    console.log(`aws: kiln build took ${run.seconds}s (${JSON.stringify(run.manifest.builds[0]?.timingsMs)})`);
  });

  afterAll(async () => {
    session?.close();
    ec2?.destroy();
    await fake?.close();
    await world?.close();
  });

  it('publishes the AMI to every region and leaves nothing else behind', async () => {
    const build = await expectCleanSuccess(world, run, 'aws');
    expect(build?.artifacts.map((a) => a.region).sort()).toEqual([REGION, ...PUBLISH_REGIONS].sort());
    for (const region of [REGION, ...PUBLISH_REGIONS]) {
      const live = fake.state.liveResources(region);
      expect({ region, instances: live.instances, volumes: live.volumes, keyPairs: live.keyPairs, securityGroups: live.securityGroups }).toEqual({
        region,
        instances: [],
        volumes: [],
        keyPairs: [],
        securityGroups: [],
      });
      expect(live.images).toHaveLength(1);
    }
  });

  it('boots an instance of a published copy: first boot deploys, versions pinned, data on the EBS volume', async () => {
    const copy = run.manifest.builds[0]?.artifacts.find((a) => a.region === LAUNCH_REGION);
    expect(copy?.id).toMatch(/^ami-/);
    const started = Date.now();
    ec2 = new EC2Client({ endpoint: fake.url, region: LAUNCH_REGION, credentials: CREDENTIALS });
    const key = generateKeyPair('customer');
    await ec2.send(new ImportKeyPairCommand({ KeyName: 'customer', PublicKeyMaterial: Buffer.from(key.publicKey) }));
    const launched = await ec2.send(new RunInstancesCommand({ ImageId: copy?.id, InstanceType: 'm6a.2xlarge', KeyName: 'customer', MinCount: 1, MaxCount: 1 }));
    const instanceId = launched.Instances?.[0]?.InstanceId ?? '';
    try {
      const instance = await waitFor(
        async () => {
          const found = (await ec2!.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }))).Reservations?.[0]?.Instances?.[0];
          return found?.State?.Name === 'running' ? done(found) : notYet(found?.State?.Name ?? 'not visible');
        },
        { what: `instance ${instanceId} to run`, timeoutMs: 5 * 60_000, initialDelayMs: 500 },
      );
      const dataVolume = instance.BlockDeviceMappings?.find((m) => m.DeviceName !== instance.RootDeviceName)?.Ebs?.VolumeId ?? '';
      session = await connectToInstance(world, { address: instance.PublicIpAddress ?? '', user: 'ec2-user', privateKey: key.privateKey, readConsole: () => world.machines.consoleOutput(instanceId) });
      await checkAppliance(session, { dataDevice: /^\/dev\/nvme\d+n1$/, user: 'ec2-user', publicKey: key.publicKey });
      // The NVMe controller carries the volume id as its serial, as on a Nitro instance.
      const serial = (await session.run('cat /sys/block/"$(basename "$(findmnt -n -o SOURCE /mnt/data)")"/device/serial')).stdoutTail.trim();
      expect(serial).toBe(dataVolume.replace('-', ''));
      console.log(`aws: instance of ${copy?.id} in ${LAUNCH_REGION} booted and checked in ${Math.round((Date.now() - started) / 1000)}s`);
    } finally {
      session?.close();
      session = undefined;
      await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    }
  });
});
