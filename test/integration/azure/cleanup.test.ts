import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { PipelineStepName } from '../../../src/definition/plan.js';
import { AzureDriver } from '../../../src/targets/azure/driver.js';
import { ArmError, armErrors } from '../../fakes/arm/index.js';
import { freePort, startSshd, type TestSshd } from '../../support/sshd.js';
import { build, GALLERY_TYPES, sourcegraphPlan, startHarness, type BuildExtra, type Harness } from './harness.js';

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

const failed = (code: string, message: string) => new ArmError(409, code, message);

interface Case {
  name: string;
  step: PipelineStepName;
  /** ARM error code the build's error names, when the failure is an ARM one. */
  code?: string;
  arrange: (h: Harness) => Promise<BuildExtra | void> | BuildExtra | void;
  readers?: boolean;
}

const cases: Case[] = [
  { name: 'the resource group is refused', step: 'prepare', code: 'RequestDisallowedByPolicy', arrange: (h) => h.fake.failNext('resourceGroups.createOrUpdate', failed('RequestDisallowedByPolicy', 'Resource was disallowed by policy.')) },
  { name: 'the virtual network is refused', step: 'prepare', code: 'InvalidAddressPrefix', arrange: (h) => h.fake.failNext('virtualNetworks.createOrUpdate', armErrors.badRequest('InvalidAddressPrefix', 'bad prefix')) },
  { name: 'the NSG is refused', step: 'prepare', code: 'SecurityRuleInvalid', arrange: (h) => h.fake.failNext('networkSecurityGroups.createOrUpdate', armErrors.badRequest('SecurityRuleInvalid', 'bad rule')) },
  {
    name: 'the public IP fails while provisioning (it exists, Failed)',
    step: 'prepare',
    code: 'PublicIPCountLimitReached',
    arrange: (h) => {
      h.fake.intercept('network.provision', (ctx) => (/publicIPAddresses/i.test(ctx.resourceId ?? '') ? failed('PublicIPCountLimitReached', 'Cannot create more than 10 public IP addresses.') : undefined));
    },
  },
  { name: 'the NIC is refused', step: 'prepare', code: 'SubnetIsFull', arrange: (h) => h.fake.failNext('networkInterfaces.createOrUpdate', armErrors.badRequest('SubnetIsFull', 'subnet full')) },
  { name: 'the VM cannot be allocated', step: 'launch', code: 'AllocationFailed', arrange: (h) => void h.fake.intercept('vm.create', () => failed('AllocationFailed', 'Allocation failed.')) },
  {
    name: 'the VM fails to boot after its disks were made',
    step: 'launch',
    code: 'InternalExecutionError',
    arrange: (h) => {
      h.machines.failStart = 'the host refused to start the machine';
    },
  },
  {
    name: 'SSH never answers',
    step: 'connect',
    arrange: async (h) => {
      const closed = await freePort();
      return { driver: { sshOverride: () => ({ host: '127.0.0.1', port: closed, username: h.sshd.user }) }, build: { stepTimeoutsMs: { connect: 1_500 } } };
    },
  },
  {
    name: 'provisioning fails',
    step: 'provision',
    arrange: () => ({
      make: (options) =>
        new (class extends AzureDriver {
          override async runtimeEnv(): Promise<Record<string, string>> {
            throw new Error('provisioning failed on purpose');
          }
        })(options),
    }),
  },
  { name: 'deallocation fails', step: 'stop', code: 'OperationPreempted', arrange: (h) => void h.fake.intercept('vm.deallocate', () => failed('OperationPreempted', 'preempted')) },
  { name: 'generalize is refused', step: 'stop', code: 'OperationNotAllowed', arrange: (h) => h.fake.failNext('virtualMachines.generalize', armErrors.operationNotAllowed('not now')) },
  { name: 'the managed image fails', step: 'capture', code: 'InternalDiskManagementError', arrange: (h) => void h.fake.intercept('image.create', () => failed('InternalDiskManagementError', 'snapshot failed')) },
  {
    name: 'replication to westeurope fails',
    step: 'capture',
    code: 'ReplicationJobFailed',
    arrange: (h) => void h.fake.intercept('galleryImageVersion.replicate', (ctx) => (ctx.region === 'westeurope' ? new ArmError(500, 'ReplicationJobFailed', 'storage unavailable') : undefined)),
  },
  // the fake does not model RBAC: the role assignment is answered 404 InvalidResourceType
  { name: 'sharing with a reader fails', step: 'publish', code: 'InvalidResourceType', readers: true, arrange: () => undefined },
];

describe('azure driver: a failure at any step leaves nothing but the shared gallery', () => {
  test.each(cases)('$step: $name', async (c) => {
    const extra = (await c.arrange(h)) ?? {};
    const plan = await sourcegraphPlan(`razc${String(cases.indexOf(c)).padStart(4, '0')}`, (t) => {
      if (c.readers) t.publish.gallery?.readers.push('11111111-2222-4333-8444-555555555555');
    });
    const { result, ledger } = await build(h, plan, extra);
    expect(result.status).toBe('failed');
    expect(result.failedStep).toBe(c.step);
    if (c.code) expect(result.error).toMatchObject({ code: 'CLOUD', context: { code: c.code, resource: expect.stringMatching(/^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+(\/providers\/.+)?$/) } });
    expect(result.leftovers).toEqual([]);
    expect(ledger.entries()).toEqual([]);

    // the gallery's group, gallery and image definition are made in capture, shared, and kept
    const kept = ['capture', 'publish'].includes(c.step) ? ['Microsoft.Resources/resourceGroups', ...GALLERY_TYPES] : [];
    expect(Object.keys(h.fake.inventory().resources).sort()).toEqual(kept.sort());
    if (kept.length) expect(h.fake.inventory().resources['Microsoft.Resources/resourceGroups']).toEqual([expect.stringMatching(/\/resourceGroups\/sourcegraph-images$/)]);
    expect(h.fake.inventory().backend).toEqual({ disks: [], snapshots: [], machines: {} });
    expect(h.fake.inventory().operationsInProgress).toBe(0);
  });

  test('an interrupt while the VM is being created is undone too', async () => {
    const controller = new AbortController();
    h.fake.transitions.setDelays({ 'vm.create': 300 });
    h.fake.intercept('virtualMachines.createOrUpdate', () => void setTimeout(() => controller.abort(), 50));
    const { result, ledger } = await build(h, await sourcegraphPlan('razc0100'), { build: { signal: controller.signal } });
    expect(result.status).toBe('interrupted');
    expect(result.failedStep).toBe('launch');
    expect(ledger.entries()).toEqual([]);
    expect(h.fake.inventory()).toEqual({ resources: {}, backend: { disks: [], snapshots: [], machines: {} }, operationsInProgress: 0 });
  });
});
