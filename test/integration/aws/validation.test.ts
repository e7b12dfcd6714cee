/**
 * The AWS validation instance (launchInstance) against the EC2 fake, after a real build there: the
 * instance from the build's AMI with the validation key only and SSH from the builder only, real SSH
 * to it (the loopback sshd); a customer's data volume attached in its own zone and kept through stop
 * and undo; a failure at each create call leaving nothing; and validateImages driving it all.
 */
import { AttachVolumeCommand, CreateVolumeCommand, RunInstancesCommand, waitUntilInstanceRunning, waitUntilVolumeAvailable, type EC2Client } from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KilnError } from '../../../src/core/errors.js';
import type { Plan } from '../../../src/definition/plan.js';
import type { BuildResult } from '../../../src/pipeline/build.js';
import { BuildLog } from '../../../src/pipeline/build-log.js';
import { BuildState } from '../../../src/pipeline/build-state.js';
import { ResourceRecorder, type BuildContext } from '../../../src/pipeline/context.js';
import type { Ledger } from '../../../src/pipeline/ledger.js';
import type { RunPaths } from '../../../src/pipeline/state-dir.js';
import { undo } from '../../../src/pipeline/undo.js';
import { fingerprint, generateKeyPair, SshSession } from '../../../src/ssh/index.js';
import type { AwsDriver } from '../../../src/targets/aws/driver.js';
import type { Artifact } from '../../../src/targets/target.js';
import { validateImages, VALIDATION_SUFFIX } from '../../../src/validate/validate.js';
import { Ec2Error } from '../../fakes/ec2/index.js';
import { ec2Client, FAST_WAIT } from '../../fakes/ec2/testkit.js';
import { aws, callSequence, deleteArtifacts, REGION, startWorld, tagsOf, type World } from './world.js';

let world: World;
let ec2: EC2Client;

beforeEach(async () => {
  world = await startWorld({ delays: { 'instance.running': 20, 'instance.stopped': 20, 'instance.terminated': 20, 'snapshot.completed': 10, 'image.available': 20, 'volume.available': 10, 'volume.attached': 20, 'volume.detached': 10 } });
  ec2 = ec2Client(world.fake, REGION);
});
afterEach(async () => {
  ec2?.destroy();
  await world?.close();
});

interface Built {
  plan: Plan;
  result: BuildResult;
  ami: string;
  artifacts: Artifact[];
  ledger: Ledger;
  paths: RunPaths;
  driver: AwsDriver;
}

/** A real build on the fake, published in its own region only (copies are not what is tested here). */
async function build(runId: string, change: (plan: Plan) => Plan = (p) => p): Promise<Built> {
  const base = world.plan(runId);
  const plan = change({ ...base, targetPlan: { ...aws(base), publish: { regions: [], public: false, accounts: [] } } });
  const { result, ledger, paths, driver } = await world.build(plan);
  expect(result.error?.message).toBeUndefined();
  const ami = result.artifacts.find((a) => a.kind === 'ami' && a.region === REGION)?.id as string;
  expect(ami).toMatch(/^ami-/);
  return { plan, result, ami, artifacts: result.artifacts, ledger, paths, driver };
}

/** The context validateImages gives the driver: the build's plan under the build id `<build>-check`. */
async function validationContext(b: Built): Promise<BuildContext & { lines: string[] }> {
  const plan: Plan = { ...b.plan, buildId: `${b.plan.buildId}${VALIDATION_SUFFIX}` };
  const paths = b.paths.build(plan.buildId);
  const lines: string[] = [];
  const log = new BuildLog(paths.log, (line) => lines.push(line));
  const state = await BuildState.open(paths.state, plan.buildId);
  return { plan, resources: new ResourceRecorder(b.ledger, plan), state, paths, log, signal: AbortSignal.timeout(60_000), lines };
}

/** Undoes the validation's resources; returns why each one that is left could not be deleted. */
async function undoValidation(b: Built, ctx: BuildContext): Promise<string[]> {
  const failures: string[] = [];
  await undo(b.ledger, () => b.driver, { build: ctx.plan.buildId, log: (line) => void (line.includes('could not delete') && failures.push(line)) });
  return failures;
}

/** A customer's data volume: made from the AMI's data snapshot, in `zone`, available. */
async function customerVolume(ami: string, zone: string): Promise<string> {
  const image = world.fake.state.records(REGION).images.get(ami);
  const data = image?.mappings.find((m) => m.deviceName === '/dev/sdf');
  const out = await ec2.send(new CreateVolumeCommand({ AvailabilityZone: zone, SnapshotId: data?.snapshotId, VolumeType: 'gp3' }));
  await waitUntilVolumeAvailable({ client: ec2, ...FAST_WAIT }, { VolumeIds: [out.VolumeId as string] });
  return out.VolumeId as string;
}

/** What the region holds besides the AMI and its snapshots. */
function leftInRegion() {
  const { instances, volumes, keyPairs, securityGroups } = world.fake.state.liveResources(REGION);
  return { instances, volumes, keyPairs, securityGroups };
}

/** The RunInstances parameters of every call from now on. */
function watchRunInstances(): Array<Record<string, unknown>> {
  const seen: Array<Record<string, unknown>> = [];
  world.fake.intercept((call) => void (call.action === 'RunInstances' && seen.push(call.params.raw)));
  return seen;
}

describe('launchInstance on aws', () => {
  it('launches from the build\'s AMI with the validation key only, SSH from the builder only, and reaches it over SSH', async () => {
    const b = await build('rawsval1');
    const ctx = await validationContext(b);
    const key = generateKeyPair('kiln-validate-test');
    const from = world.fake.calls.length;
    const runs = watchRunInstances();

    const access = await b.driver.launchInstance(ctx, b.artifacts, { publicKey: key.publicKey, privateKey: key.privateKey });

    expect(callSequence(world.fake, REGION, from)).toEqual([
      'DescribeImages', // the AMI: its root and data devices
      'ImportKeyPair',
      'DescribeVpcs',
      'CreateSecurityGroup',
      'AuthorizeSecurityGroupIngress',
      'RunInstances',
      'DescribeInstances', // waiter: running
      'GetConsoleOutput', // host keys
    ]);
    // As a customer launches it: the AMI's own volume mappings, nothing over them.
    expect(runs).toHaveLength(1);
    expect(runs[0]?.BlockDeviceMapping).toBeUndefined();
    expect(runs[0]?.Placement).toBeUndefined();

    const check = ctx.plan.buildId;
    const names = { key: `kiln-${check}-key`, group: `kiln-${check}-ssh`, instance: `kiln-${check}-instance` };
    expect(Object.values(names).some((n) => Object.values(aws(b.plan).names).includes(n))).toBe(false);
    const tags = (name: string) => new Map([...tagsOf(b.plan, name), ['kiln:build', check]]);
    const r = world.fake.state.records(REGION);
    const instance = [...r.instances.values()].find((i) => i.state === 'running');
    expect(instance).toMatchObject({ imageId: b.ami, instanceType: 'm6a.2xlarge', keyName: names.key, availabilityZone: `${REGION}a`, tags: tags(names.instance) });
    // Root and data volumes made from the AMI's snapshots, deleted with the instance, tagged.
    const image = r.images.get(b.ami);
    const volumes = (instance?.volumeIds ?? []).map((id) => r.volumes.get(id));
    expect(volumes.map((v) => [v?.attachment?.device, v?.snapshotId, v?.attachment?.deleteOnTermination])).toEqual(image?.mappings.map((m) => [m.deviceName, m.snapshotId, true]));
    for (const v of volumes) expect(v?.tags).toEqual(tags(names.instance));

    // The only key the instance takes is the validation key; SSH only, from the builder only.
    const keyPair = [...r.keyPairs.values()].find((k) => k.name === names.key);
    expect(keyPair?.publicKey.split(' ').slice(0, 2)).toEqual(key.publicKey.split(' ').slice(0, 2));
    expect(world.machines.started.at(-1)?.sshPublicKey.split(' ').slice(0, 2)).toEqual(key.publicKey.split(' ').slice(0, 2));
    const group = [...r.securityGroups.values()].find((g) => g.name === names.group);
    expect(instance?.securityGroupIds).toEqual([group?.id]);
    expect(group?.ingress).toEqual([expect.objectContaining({ ipProtocol: 'tcp', fromPort: 22, toPort: 22, cidrIp: '127.0.0.1/32' })]);
    expect(group?.tags).toEqual(tags(names.group));

    // Everything recorded under the validation build, nothing under the build.
    expect(b.ledger.entries({ build: check }).map((e) => [e.kind, e.name, e.id !== undefined])).toEqual([
      ['key-pair', names.key, true],
      ['security-group', names.group, true],
      ['volume', `${names.instance}-root`, true],
      ['volume', `${names.instance}-data`, true],
      ['instance', names.instance, true],
    ]);
    expect(b.ledger.entries({ build: b.plan.buildId })).toEqual([]);

    // The access: the instance's address (the sshd), the plan's user, the validation key, host keys from the console.
    expect(access).toEqual({ host: '127.0.0.1', port: world.sshd.port, username: world.sshd.user, privateKey: key.privateKey, hostKeys: [world.sshd.hostPublicKey.split(' ').slice(0, 2).join(' ')] });
    const session = await SshSession.connect({ ...access, timeoutMs: 10_000, signal: ctx.signal, onLog: (line) => ctx.lines.push(line) });
    session.close();
    expect(ctx.lines.join('\n')).toContain(`verified (${fingerprint(world.sshd.hostPublicKey)})`);
    expect(world.sshd.log()).toContain(fingerprint(key.publicKey));

    expect(await undoValidation(b, ctx)).toEqual([]);
    expect(b.ledger.entries()).toEqual([]);
    expect(leftInRegion()).toEqual({ instances: [], volumes: [], keyPairs: [], securityGroups: [] });
    await deleteArtifacts(world, b.result);
    expect(world.fake.state.allLiveResources()).toEqual({});
    expect(world.fake.unexpectedErrors).toEqual([]);
  });

  it('with a data disk: launches in its zone without the image\'s data volume, attaches it at the data device, stops, and keeps it through undo', async () => {
    const b = await build('rawsval2');
    const given = await customerVolume(b.ami, `${REGION}b`);
    const ctx = await validationContext(b);
    const key = generateKeyPair('kiln-validate-test');
    const from = world.fake.calls.length;
    const runs = watchRunInstances();

    await b.driver.launchInstance(ctx, b.artifacts, { publicKey: key.publicKey, privateKey: key.privateKey, dataDisk: given });

    expect(callSequence(world.fake, REGION, from)).toEqual([
      'DescribeImages',
      'DescribeVolumes', // the given volume: there, free, and in which zone
      'ImportKeyPair',
      'DescribeVpcs',
      'CreateSecurityGroup',
      'AuthorizeSecurityGroupIngress',
      'RunInstances',
      'DescribeInstances',
      'AttachVolume',
      'DescribeVolumes', // until attached
      'GetConsoleOutput',
    ]);
    expect(runs[0]?.Placement).toEqual({ AvailabilityZone: `${REGION}b` });
    expect(runs[0]?.BlockDeviceMapping).toEqual([{ DeviceName: '/dev/sdf', NoDevice: '' }]);
    const r = world.fake.state.records(REGION);
    const instance = [...r.instances.values()].find((i) => i.state === 'running');
    expect(instance?.availabilityZone).toBe(`${REGION}b`);
    const attached = (instance?.volumeIds ?? []).map((id) => r.volumes.get(id));
    expect(attached.map((v) => [v?.attachment?.device, v?.attachment?.status, v?.attachment?.deleteOnTermination])).toEqual([
      ['/dev/xvda', 'attached', true],
      ['/dev/sdf', 'attached', false],
    ]);
    expect(attached[1]?.id).toBe(given);
    // No volume was made from the image's data snapshot: the root and the given one, nothing else.
    expect(new Set(leftInRegion().volumes)).toEqual(new Set([attached[0]?.id, given]));
    const entries = b.ledger.entries({ build: ctx.plan.buildId });
    expect(entries.map((e) => e.kind)).toEqual(['key-pair', 'security-group', 'volume', 'instance']);
    expect(entries.some((e) => e.id === given)).toBe(false);
    expect(ctx.lines.join('\n')).toContain(`the given data volume ${given} attached at /dev/sdf (kept)`);

    // validateImages stops it cleanly before deleting it when the data disk is to be kept.
    await b.driver.stop(ctx);
    expect(instance?.state).toBe('stopped');
    expect(r.volumes.get(given)?.attachment?.instanceId).toBe(instance?.id);

    expect(await undoValidation(b, ctx)).toEqual([]);
    expect(b.ledger.entries()).toEqual([]);
    expect(leftInRegion()).toEqual({ instances: [], volumes: [given], keyPairs: [], securityGroups: [] });
    const kept = r.volumes.get(given);
    expect([kept?.state, kept?.attachment, kept?.availabilityZone]).toEqual(['available', undefined, `${REGION}b`]);
    expect(world.fake.unexpectedErrors).toEqual([]);
  });

  it('refuses a data disk that does not exist, is in use or lies outside the plan\'s subnet\'s zone, before creating anything', async () => {
    const subnetA = [...world.fake.state.records(REGION).subnets.values()].find((s) => s.availabilityZone === `${REGION}a`)?.id as string;
    const b = await build('rawsval3', (plan) => ({ ...plan, targetPlan: { ...aws(plan), subnetId: subnetA } }));
    const key = generateKeyPair('kiln-validate-test');
    const attempt = async (dataDisk: string) => {
      const ctx = await validationContext(b);
      const error = await b.driver.launchInstance(ctx, b.artifacts, { publicKey: key.publicKey, privateKey: key.privateKey, dataDisk }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(b.ledger.entries({ build: ctx.plan.buildId })).toEqual([]);
      expect(error).toBeInstanceOf(KilnError);
      return error as KilnError;
    };

    const missing = await attempt('vol-0123456789abcdef0');
    expect(missing.exitCode).toBe(2);
    expect(missing.context).toMatchObject({ field: '--data-disk', resource: 'vol-0123456789abcdef0', code: 'InvalidVolume.NotFound' });
    expect(missing.message).toMatch(/volume vol-0123456789abcdef0 does not exist in us-west-2/);
    expect((await attempt('disk-1')).message).toMatch(/"disk-1" is not an EBS volume id/);

    const elsewhere = await customerVolume(b.ami, `${REGION}b`);
    const outside = await attempt(elsewhere);
    expect(outside.exitCode).toBe(2);
    expect(outside.message).toMatch(new RegExp(`volume ${elsewhere} is in ${REGION}b, but targets.aws.subnetId ${subnetA} is in ${REGION}a`));

    const busy = await customerVolume(b.ami, `${REGION}a`);
    const run = await ec2.send(new RunInstancesCommand({ ImageId: b.ami, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 }));
    const other = run.Instances?.[0]?.InstanceId as string;
    await waitUntilInstanceRunning({ client: ec2, ...FAST_WAIT }, { InstanceIds: [other] });
    await ec2.send(new AttachVolumeCommand({ VolumeId: busy, InstanceId: other, Device: '/dev/sdg' }));
    const inUse = await attempt(busy);
    expect(inUse.exitCode).toBe(2);
    expect(inUse.context).toMatchObject({ code: 'VolumeInUse', resource: busy });
    expect(inUse.message).toContain(`attached to ${other}`);

    expect(world.fake.calls.filter((c) => c.action === 'ImportKeyPair')).toHaveLength(1); // the build's only
    expect(world.fake.unexpectedErrors).toEqual([]);
  });

  it('leaves nothing but the given volume after undo when any create call fails, before or after taking effect', async () => {
    const b = await build('rawsval4');
    const given = await customerVolume(b.ami, `${REGION}c`);
    const key = generateKeyPair('kiln-validate-test');
    const actions = ['ImportKeyPair', 'CreateSecurityGroup', 'AuthorizeSecurityGroupIngress', 'RunInstances', 'AttachVolume'];
    const outcomes: string[] = [];
    for (const action of actions) {
      for (const after of [false, true]) {
        // Not retryable: the SDK gives up at once, the resource may exist without kiln knowing its id.
        let armed = true;
        const remove = world.fake.intercept((call) => {
          if (!armed || call.action !== action) return undefined;
          armed = false;
          const error = new Ec2Error('UnauthorizedOperation', `injected: ${action}`);
          return after ? { error, after: true } : error;
        });
        const ctx = await validationContext(b);
        const error = await b.driver.launchInstance(ctx, b.artifacts, { publicKey: key.publicKey, privateKey: key.privateKey, dataDisk: given }).then(
          () => undefined,
          (err: unknown) => err as KilnError,
        );
        remove();
        outcomes.push(`${action}${after ? ' (took effect)' : ''}: ${error?.context.code} ${error?.context.action}`);
        expect(await undoValidation(b, ctx)).toEqual([]);
        expect(b.ledger.entries()).toEqual([]);
        expect({ action, after, left: leftInRegion() }).toEqual({ action, after, left: { instances: [], volumes: [given], keyPairs: [], securityGroups: [] } });
        const volume = world.fake.state.records(REGION).volumes.get(given);
        expect([volume?.state, volume?.attachment]).toEqual(['available', undefined]);
      }
    }
    // Each attempt failed at the call it was meant to, with EC2's code and the action.
    expect(outcomes).toEqual(actions.flatMap((a) => [`${a}: UnauthorizedOperation ${a}`, `${a} (took effect): UnauthorizedOperation ${a}`]));
    expect(world.fake.unexpectedErrors).toEqual([]);
  });

  it('is what validateImages launches, connects to and deletes (kiln validate --target aws)', async () => {
    const b = await build('rawsval5');
    const lines: string[] = [];
    const log = new BuildLog(b.paths.build(b.plan.buildId).log, (line) => lines.push(line));
    // The loopback sshd is no appliance: the boot unit never finishes, which ends the validation right after connecting.
    const outcome = await validateImages({ plan: b.plan, driver: b.driver, images: b.artifacts, ledger: b.ledger, paths: b.paths, log, signal: AbortSignal.timeout(60_000), connectTimeoutMs: 10_000, bootTimeoutMs: 1 }).then(
      () => undefined,
      (err: unknown) => err as KilnError,
    );
    await log.close();
    expect(outcome?.code).toBe('TIMEOUT');
    expect(outcome?.message).toMatch(/the boot unit/);
    expect(lines.join('\n')).toContain(`host key of ${world.sshd.user}@127.0.0.1:${world.sshd.port} verified`);
    expect(world.fake.calls.filter((c) => c.action === 'RunInstances' && c.status === 200)).toHaveLength(2); // the build's, the validation's
    expect(b.ledger.entries()).toEqual([]);
    expect(leftInRegion()).toEqual({ instances: [], volumes: [], keyPairs: [], securityGroups: [] });
  });
});
