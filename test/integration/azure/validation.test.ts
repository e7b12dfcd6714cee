import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { Disk } from '@azure/arm-compute';
import type { Plan } from '../../../src/definition/plan.js';
import { BuildLog } from '../../../src/pipeline/build-log.js';
import { BuildState } from '../../../src/pipeline/build-state.js';
import { ResourceRecorder, type BuildContext } from '../../../src/pipeline/context.js';
import { undo } from '../../../src/pipeline/undo.js';
import { generateKeyPair, SshSession } from '../../../src/ssh/index.js';
import { VALIDATION_SUFFIX, validateImages } from '../../../src/validate/validate.js';
import { ArmError } from '../../fakes/arm/index.js';
import { startSshd, type TestSshd } from '../../support/sshd.js';
import { build, captureBodies, live, sourcegraphPlan, startHarness, writes, type BuildRun, type Harness } from './harness.js';

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

const NETWORK_CREATES = ['virtualNetworks.createOrUpdate', 'networkSecurityGroups.createOrUpdate', 'publicIPAddresses.createOrUpdate', 'networkInterfaces.createOrUpdate'];

/** A succeeded build of the sourcegraph XS plan on the fake. */
async function built(runId: string): Promise<{ plan: Plan; run: BuildRun }> {
  const plan = await sourcegraphPlan(runId);
  const run = await build(h, plan);
  expect(run.result.status).toBe('succeeded');
  return { plan, run };
}

/** The context validateImages gives the driver: the build's plan under the validation's build id. */
async function validationContext(run: BuildRun, plan: Plan): Promise<BuildContext> {
  const check: Plan = { ...plan, buildId: `${plan.buildId}${VALIDATION_SUFFIX}` };
  const paths = run.paths.build(check.buildId);
  const log = new BuildLog(paths.log);
  return { plan: check, resources: new ResourceRecorder(run.ledger, check), state: await BuildState.open(paths.state, check.buildId), paths, log, signal: new AbortController().signal };
}

function compute() {
  const { credential, options } = h.fake.clientOptions();
  return import('@azure/arm-compute').then(({ ComputeManagementClient }) => new ComputeManagementClient(credential, h.fake.subscriptionId, options));
}

/** A customer's data disk, kept in a group of its own. */
async function customerDisk(location = 'eastus', name = 'appliance-data'): Promise<Disk> {
  const { credential, options, pollOptions } = h.fake.clientOptions();
  const { ResourceManagementClient } = await import('@azure/arm-resources');
  await new ResourceManagementClient(credential, h.fake.subscriptionId, options).resourceGroups.createOrUpdate('customer', { location: 'eastus' });
  return (await compute()).disks.beginCreateOrUpdateAndWait('customer', name, { location, creationData: { createOption: 'Empty' }, diskSizeGB: 500 }, pollOptions);
}

describe('azure driver: launchInstance for validation, against the ARM fake', () => {
  test("an instance of the managed image with the image's data disk, only the validation key, SSH from the builder only; undo leaves the build's result", async () => {
    const { plan, run } = await built('razv0001');
    const afterBuild = h.fake.liveResourceIds();
    const since = h.fake.requests.length;
    const bodies = captureBodies(h.fake, ['resourceGroups.createOrUpdate', ...NETWORK_CREATES, 'virtualMachines.createOrUpdate']);
    const ctx = await validationContext(run, plan);
    const key = generateKeyPair('kiln-validate-razv0001');
    const access = await run.driver.launchInstance(ctx, run.result.artifacts, { publicKey: key.publicKey, privateKey: key.privateKey });

    expect(writes(h.fake, since)).toEqual(['resourceGroups.createOrUpdate', ...NETWORK_CREATES, 'virtualMachines.createOrUpdate']);
    const tags = { ...plan.tags, 'kiln:build': 'razv0001-azure-xs-check' };
    expect(bodies['resourceGroups.createOrUpdate']).toEqual([{ location: 'eastus', tags }]);
    for (const op of [...NETWORK_CREATES, 'virtualMachines.createOrUpdate']) expect(bodies[op]?.[0], op).toMatchObject({ location: 'eastus', tags });
    const nsg = bodies['networkSecurityGroups.createOrUpdate']?.[0] as { properties: { securityRules: { properties: Record<string, unknown> }[] } };
    expect(nsg.properties.securityRules.map((r) => r.properties)).toEqual([expect.objectContaining({ sourceAddressPrefix: '127.0.0.1/32', destinationPortRange: '22', access: 'Allow', direction: 'Inbound' })]);

    // the VM: the managed image in the plan's location, the size's VM size, the image's data disk at LUN 0, the validation key alone
    const image = run.result.artifacts.find((a) => a.kind === 'azure-managed-image')?.id;
    expect(image).toMatch(/\/providers\/Microsoft\.Compute\/images\/sourcegraph-5\.2\.0-xs-razv0001$/);
    const vm = bodies['virtualMachines.createOrUpdate']?.[0] as { properties: Record<string, unknown> };
    expect(vm.properties).toMatchObject({
      hardwareProfile: { vmSize: 'Standard_D8as_v5' },
      storageProfile: {
        imageReference: { id: image },
        osDisk: { name: 'kiln-razv0001-xs-os-check', createOption: 'FromImage', deleteOption: 'Delete' },
        dataDisks: [{ lun: 0, name: 'kiln-razv0001-xs-data-check', createOption: 'FromImage', deleteOption: 'Delete' }],
      },
      osProfile: { adminUsername: 'sourcegraph', linuxConfiguration: { disablePasswordAuthentication: true, ssh: { publicKeys: [{ path: '/home/sourcegraph/.ssh/authorized_keys', keyData: key.publicKey }] } } },
    });
    const started = h.machines.started.at(-1);
    expect(started).toMatchObject({ sshUser: 'sourcegraph', sshPublicKey: key.publicKey });
    expect(started?.diskIds).toHaveLength(2);

    // the access: the VM's public address as the plan's user with the validation key; SSH works with it
    expect(h.sshTargets.at(-1)).toBe(`sourcegraph@${started?.address}:22`);
    expect(access).toMatchObject({ host: sshd.host, port: sshd.port, privateKey: key.privateKey, hostKeys: [] });
    const session = await SshSession.connect({ ...access, timeoutMs: 20_000, signal: AbortSignal.timeout(30_000) });
    session.close();

    // every resource is in the ledger under the validation's build id, none of the build's is touched
    expect(run.ledger.entries({ build: ctx.plan.buildId }).map((e) => [e.kind, e.name, e.id === undefined])).toEqual([
      ['resource-group', 'kiln-razv0001-xs-rg-check', false],
      ['virtual-network', 'kiln-razv0001-xs-vnet-check', false],
      ['network-security-group', 'kiln-razv0001-xs-nsg-check', false],
      ['public-ip', 'kiln-razv0001-xs-ip-check', false],
      ['network-interface', 'kiln-razv0001-xs-nic-check', false],
      ['disk', 'kiln-razv0001-xs-os-check', false],
      ['disk', 'kiln-razv0001-xs-data-check', false],
      ['virtual-machine', 'kiln-razv0001-xs-vm-check', false],
    ]);
    expect(await undo(run.ledger, () => run.driver, { build: ctx.plan.buildId, log: () => undefined })).toEqual([]);
    expect(h.fake.liveResourceIds()).toEqual(afterBuild);
    expect(h.fake.inventory().backend).toMatchObject({ disks: [], machines: {} });
  });

  test('with a data disk: attached at the LUN from an image of the OS disk alone, stopped cleanly, and kept by undo', async () => {
    const { plan, run } = await built('razv0002');
    const disk = await customerDisk();
    const afterBuild = h.fake.liveResourceIds();
    const since = h.fake.requests.length;
    const bodies = captureBodies(h.fake, ['disks.createOrUpdate', 'images.createOrUpdate', 'virtualMachines.createOrUpdate']);
    const ctx = await validationContext(run, plan);
    const key = generateKeyPair('kiln-validate-razv0002');
    await run.driver.launchInstance(ctx, run.result.artifacts, { publicKey: key.publicKey, privateKey: key.privateKey, dataDisk: disk.id });

    expect(writes(h.fake, since)).toEqual(['resourceGroups.createOrUpdate', ...NETWORK_CREATES, 'disks.createOrUpdate', 'images.createOrUpdate', 'virtualMachines.createOrUpdate']);
    const image = run.result.artifacts.find((a) => a.kind === 'azure-managed-image')?.id;
    const group = `/subscriptions/${h.fake.subscriptionId}/resourceGroups/kiln-razv0002-xs-rg-check/providers/Microsoft.Compute`;
    expect(bodies['disks.createOrUpdate']).toEqual([expect.objectContaining({ properties: { creationData: { createOption: 'FromImage', imageReference: { id: image } } } })]);
    expect(bodies['images.createOrUpdate']).toEqual([
      expect.objectContaining({ properties: { hyperVGeneration: 'V1', storageProfile: { osDisk: { osType: 'Linux', osState: 'Generalized', managedDisk: { id: `${group}/disks/kiln-razv0002-xs-os-check-source` } } } } }),
    ]);
    const vm = bodies['virtualMachines.createOrUpdate']?.[0] as { properties: { storageProfile: Record<string, unknown> } };
    expect(vm.properties.storageProfile).toMatchObject({
      imageReference: { id: `${group}/images/kiln-razv0002-xs-os-check-image` },
      dataDisks: [{ lun: 0, createOption: 'Attach', managedDisk: { id: disk.id }, deleteOption: 'Detach' }],
    });
    // the machine booted with the customer's disk; the image's data disk was never made
    const backendId = h.fake.state.get<{ backendId: string }>(disk.id)?.internal.backendId;
    expect(h.machines.started.at(-1)?.diskIds).toEqual([expect.any(String), backendId]);
    expect(h.fake.liveResourceIds().filter((id) => /\/disks\//.test(id))).toEqual([disk.id, `${group}/disks/kiln-razv0002-xs-os-check`, `${group}/disks/kiln-razv0002-xs-os-check-source`].sort());
    // only what the validation made is in the ledger: not the customer's disk
    const entries = run.ledger.entries({ build: ctx.plan.buildId });
    expect(entries.map((e) => e.kind)).toEqual(['resource-group', 'virtual-network', 'network-security-group', 'public-ip', 'network-interface', 'disk', 'image', 'disk', 'virtual-machine']);
    expect(JSON.stringify(entries)).not.toContain('appliance-data');
    // a sweep would take the OS-only image (were kiln killed now), never the build's own
    const tagged = await run.driver.listTagged({ signal: AbortSignal.timeout(10_000) });
    expect(tagged.filter((r) => r.kind === 'image').map((r) => r.id)).toEqual([`${group}/images/kiln-razv0002-xs-os-check-image`]);

    // stop shuts the instance down through the guest
    const beforeStop = h.fake.requests.length;
    await run.driver.stop(ctx);
    expect(writes(h.fake, beforeStop)).toEqual(['virtualMachines.powerOff']);
    expect(h.fake.requests.find((r, i) => i >= beforeStop && r.operation === 'virtualMachines.powerOff')?.path).not.toMatch(/skipShutdown=true/);
    const c = await compute();
    const view = await c.virtualMachines.get('kiln-razv0002-xs-rg-check', 'kiln-razv0002-xs-vm-check', { expand: 'instanceView' });
    expect(view.instanceView?.statuses?.map((x) => x.code)).toContain('PowerState/stopped');

    // undo deletes everything the validation made; the customer's disk stays, unattached, with its data
    expect(await undo(run.ledger, () => run.driver, { build: ctx.plan.buildId, log: () => undefined })).toEqual([]);
    expect(h.fake.liveResourceIds()).toEqual(afterBuild);
    const kept = await c.disks.get('customer', 'appliance-data');
    expect(kept.managedBy).toBeUndefined();
    expect(kept.diskState).toBe('Unattached');
    expect(h.fake.inventory().backend).toMatchObject({ disks: [backendId], machines: {} });
  });

  test('a failure at each create call of launchInstance leaves nothing after undo, and the customer disk untouched', async () => {
    const { plan, run } = await built('razv0003');
    const disk = await customerDisk();
    const baseline = h.fake.liveResourceIds();
    const refused = new ArmError(409, 'OperationNotAllowed', 'injected refusal');
    // the create requests refused, then the long-running creates failing after the resource exists
    const faults = [
      'resourceGroups.createOrUpdate',
      ...NETWORK_CREATES,
      'disks.createOrUpdate',
      'images.createOrUpdate',
      'virtualMachines.createOrUpdate',
      'network.provision',
      'disk.create',
      'image.create',
      'vm.create',
    ];
    for (const fault of faults) {
      const remove = h.fake.intercept(fault, () => refused);
      const ctx = await validationContext(run, plan);
      const key = generateKeyPair('kiln-validate-razv0003');
      const err = await run.driver.launchInstance(ctx, run.result.artifacts, { publicKey: key.publicKey, privateKey: key.privateKey, dataDisk: disk.id }).catch((e: unknown) => e);
      remove();
      expect(err, fault).toMatchObject({ code: 'CLOUD', context: { code: 'OperationNotAllowed', resource: expect.stringMatching(/^\/subscriptions\//) } });
      expect(run.ledger.entries({ build: ctx.plan.buildId }).length, fault).toBeGreaterThan(0);
      expect(await undo(run.ledger, () => run.driver, { build: ctx.plan.buildId, log: () => undefined }), fault).toEqual([]);
      expect(h.fake.liveResourceIds(), fault).toEqual(baseline);
      expect((await (await compute()).disks.get('customer', 'appliance-data')).managedBy, fault).toBeUndefined();
    }
    expect(h.fake.inventory().backend.machines).toEqual({});
    expect(h.fake.inventory().operationsInProgress).toBe(0);
  });

  test('a data disk that is not a managed disk of this subscription and location, or is attached elsewhere, is an input error before anything is made', async () => {
    const { plan, run } = await built('razv0004');
    const disk = await customerDisk();
    const far = await customerDisk('westeurope', 'far-data');
    const elsewhere = `/subscriptions/${h.fake.subscriptionId}/resourceGroups/customer/providers/Microsoft.Compute/disks/appliance-data`;
    const since = h.fake.requests.length;
    const cases: [string, RegExp][] = [
      ['appliance-data', /--data-disk: expected the ARM id of a managed disk/],
      [`${elsewhere.replace('/disks/', '/snapshots/')}`, /expected the ARM id of a managed disk/],
      [elsewhere.replace(h.fake.subscriptionId, '11111111-1111-4111-8111-111111111111'), /is in subscription 11111111/],
      [`${elsewhere}-gone`, /managed disk .*appliance-data-gone does not exist/],
      [far.id ?? '', /far-data is in westeurope; the instance runs in eastus/],
    ];
    for (const [dataDisk, message] of cases) {
      const ctx = await validationContext(run, plan);
      const key = generateKeyPair('kiln-validate-razv0004');
      const err = await run.driver.launchInstance(ctx, run.result.artifacts, { publicKey: key.publicKey, privateKey: key.privateKey, dataDisk }).catch((e: unknown) => e);
      expect(err, dataDisk).toMatchObject({ code: 'INPUT', exitCode: 2, message: expect.stringMatching(message) });
    }
    expect(writes(h.fake, since)).toEqual([]);
    expect(disk.id).toBe(elsewhere);

    // attached to another VM (the validation instance of the first attempt here)
    const first = await validationContext(run, plan);
    const key = generateKeyPair('kiln-validate-razv0004');
    await run.driver.launchInstance(first, run.result.artifacts, { publicKey: key.publicKey, privateKey: key.privateKey, dataDisk: disk.id });
    const err = await run.driver
      .launchInstance({ ...first, plan: { ...first.plan, buildId: `${first.plan.buildId}2` } }, run.result.artifacts, { publicKey: key.publicKey, privateKey: key.privateKey, dataDisk: disk.id })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INPUT', message: expect.stringMatching(/is attached to .*kiln-razv0004-xs-vm-check; detach it/) });
    expect(await undo(run.ledger, () => run.driver, { build: first.plan.buildId, log: () => undefined })).toEqual([]);
  });

  test('validateImages on azure: the instance is launched, connected to, and undone by the validation build id', async () => {
    const { plan, run } = await built('razv0006');
    const disk = await customerDisk();
    const baseline = h.fake.liveResourceIds();
    const logins = () => sshd.log().split('Accepted publickey').length;
    const loginsBefore = logins();
    // The "instance" is this host's sshd: its boot unit never finishes, so the wait times out at once.
    const err = await validateImages({
      plan,
      driver: run.driver,
      images: run.result.artifacts,
      dataDisk: disk.id,
      ledger: run.ledger,
      paths: run.paths,
      log: new BuildLog(undefined),
      signal: AbortSignal.timeout(60_000),
      connectTimeoutMs: 20_000,
      bootTimeoutMs: 1,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TIMEOUT', message: expect.stringMatching(/kiln-boot\.service/) });
    expect(h.machines.started.at(-1)?.sshPublicKey).toMatch(/ kiln-validate-razv0006-azure-xs-check$/);
    expect(logins()).toBeGreaterThan(loginsBefore);
    expect(run.ledger.entries()).toEqual([]);
    expect(h.fake.liveResourceIds()).toEqual(baseline);
    expect((await (await compute()).disks.get('customer', 'appliance-data')).diskState).toBe('Unattached');
  });

  test('without a managed image, the gallery version replicated to the location; none there is a validation error', async () => {
    const { plan, run } = await built('razv0005');
    const versions = run.result.artifacts.filter((a) => a.kind === 'azure-gallery-image-version');
    const bodies = captureBodies(h.fake, ['virtualMachines.createOrUpdate']);
    const ctx = await validationContext(run, plan);
    const key = generateKeyPair('kiln-validate-razv0005');
    await run.driver.launchInstance(ctx, versions, { publicKey: key.publicKey, privateKey: key.privateKey });
    const vm = bodies['virtualMachines.createOrUpdate']?.[0] as { properties: { storageProfile: { imageReference: unknown } } };
    expect(vm.properties.storageProfile.imageReference).toEqual({ id: versions[0]?.id });
    expect(await undo(run.ledger, () => run.driver, { build: ctx.plan.buildId, log: () => undefined })).toEqual([]);

    const since = h.fake.requests.length;
    const elsewhere = versions.filter((a) => a.region !== 'eastus');
    const err = await run.driver.launchInstance(ctx, elsewhere, { publicKey: key.publicKey, privateKey: key.privateKey }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'VALIDATION', message: expect.stringMatching(/no Azure managed image or gallery image version in eastus.*\(westeurope\)/) });
    expect(writes(h.fake, since)).toEqual([]);
    expect(live(h.fake)['Microsoft.Compute/virtualMachines']).toBeUndefined();
  });
});
