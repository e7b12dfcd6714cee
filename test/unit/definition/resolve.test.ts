import { describe, expect, it } from 'vitest';
import { InputError } from '../../../src/core/errors.js';
import { loadDefinition } from '../../../src/definition/load.js';
import { resolve } from '../../../src/definition/resolve.js';
import { TARGETS } from '../../../src/definition/schema.js';
import { expectGolden } from '../../support/golden.js';

const sourcegraph = await loadDefinition('images/sourcegraph.yaml');
const gitea = await loadDefinition('images/gitea.yaml');
const runId = 'rgolden01';

describe('resolve', () => {
  for (const target of TARGETS) {
    it(`matches the golden plan for sourcegraph on ${target}`, () => {
      const plan = resolve(sourcegraph, target, 'xs', '5.2.0', { runId });
      expectGolden(`test/unit/definition/golden/sourcegraph-${target}-xs.json`, `${JSON.stringify(plan, null, 2)}\n`);
    });
  }

  it('matches the golden plan for the second product', () => {
    const plan = resolve(gitea, 'gcp', 'S', '1.22.0', { runId });
    expectGolden('test/unit/definition/golden/gitea-gcp-s.json', `${JSON.stringify(plan, null, 2)}\n`);
  });

  it('plans an unpublished build (--no-publish): private images in the build region, nothing else', () => {
    const plan = (target: string, version = '5.2.0') => resolve(sourcegraph, target, 'xs', version, { runId, publish: false });
    const publishStep = (p: ReturnType<typeof plan>) => p.steps.find((s) => s.name === 'publish');
    expect(plan('aws').targetPlan).toMatchObject({ publish: { regions: [], public: false, accounts: [] } });
    expect(publishStep(plan('aws'))?.creates).toEqual([]);
    expect(plan('gcp').targetPlan).toMatchObject({ publish: { family: undefined, iam: [], deprecatePrevious: false, storageLocations: ['us'] } });
    expect(plan('azure').targetPlan).toMatchObject({ publish: { managedImage: true, gallery: undefined } });
    expect(plan('azure').steps.find((s) => s.name === 'capture')?.creates).toEqual(['image']);
    // Without a gallery version, a pre-release version builds on Azure too.
    expect(plan('azure', '5.3.0-rc.1').version).toBe('5.3.0-rc.1');
    expect(() => resolve(sourcegraph, 'azure', 'xs', '5.3.0-rc.1', { runId })).toThrow(/gallery image versions must be MAJOR.MINOR.PATCH/);
    // Everything but publishing is the published plan's.
    const published = resolve(sourcegraph, 'aws', 'xs', '5.2.0', { runId });
    expect({ ...plan('aws'), targetPlan: undefined, steps: undefined }).toEqual({ ...published, targetPlan: undefined, steps: undefined });
  });

  it('is deterministic and serialisable', () => {
    const a = resolve(sourcegraph, 'gcp', 'M', '5.2.0', { runId });
    const b = resolve(sourcegraph, 'gcp', 'M', '5.2.0', { runId });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(JSON.parse(JSON.stringify(a))).toEqual(a);
  });

  it('plans the XS AWS build the issue describes', () => {
    const plan = resolve(sourcegraph, 'aws', 'xs', '5.2.0', { runId });
    expect(plan.targetPlan).toMatchObject({ kind: 'aws', instanceType: 'm6a.2xlarge' });
    expect(plan.disks).toEqual({
      root: { sizeGb: 50, type: 'gp3' },
      data: { sizeGb: 500, type: 'gp3', iops: 3000, throughput: 125, deviceName: '/dev/sdf' },
    });
    expect(plan.software.k3s.version).toBe('v1.29.6+k3s2');
    expect(plan.software.charts.map((c) => `${c.chart}@${c.version}`)).toEqual(['sourcegraph@5.2.0', 'sourcegraph-executor-k8s@5.2.0']);
    expect(plan.provision.map((s) => s.id)).toEqual(['base', 'data-volume', 'kernel', 'firewall', 'k3s', 'helm', 'charts', 'version', 'generalize']);
    expect(plan.provision.find((s) => s.id === 'data-volume')?.runtimeEnv).toEqual(['KILN_DATA_DISK_REF']);
  });

  it('uses io2 with provisioned IOPS from size L on AWS', () => {
    const plan = resolve(sourcegraph, 'aws', 'L', '5.2.0', { runId });
    expect(plan.disks.data).toMatchObject({ type: 'io2', iops: 16000 });
  });

  it('configures the firewall with the CIDRs K3s is configured with', () => {
    const plan = resolve(sourcegraph, 'local', 'xs', '5.2.0', { runId });
    const firewall = plan.provision.find((s) => s.id === 'firewall')!;
    const k3s = plan.provision.find((s) => s.id === 'k3s')!;
    const config = k3s.files.find((f) => f.path.endsWith('k3s-config.yaml'))!.content!;
    expect(config).toContain(`cluster-cidr: ${firewall.env.KILN_CLUSTER_CIDR}`);
    expect(config).toContain(`service-cidr: ${firewall.env.KILN_SERVICE_CIDR}`);
    expect(firewall.env.KILN_FIREWALL_TCP_PORTS).toBe('22 80 443 6443');
  });

  it('lets mirrors replace every source', () => {
    const mirrors = { k3s: 'http://127.0.0.1:8080/k3s', helm: 'http://127.0.0.1:8080/helm', charts: 'http://127.0.0.1:8080/charts' };
    const plan = resolve(sourcegraph, 'local', 'xs', '5.2.0', { runId, mirrors });
    expect(plan.software.k3s.baseUrl).toBe(mirrors.k3s);
    expect(plan.software.helm.baseUrl).toBe(mirrors.helm);
    expect(plan.software.charts.every((c) => c.repository === mirrors.charts)).toBe(true);
  });

  it.each([
    ['5.0.0; rm -rf /', '--version: expected a semantic version like 5.2.0 or 5.2.0-rc.1, found "5.0.0; rm -rf /"'],
    ['$(reboot)', '--version: expected a semantic version'],
    ['5.2', '--version: expected a semantic version'],
    ['v5.2.0', '--version: expected a semantic version'],
  ])('refuses the version %j', (version, message) => {
    expect(() => resolve(sourcegraph, 'aws', 'xs', version, { runId })).toThrow(message);
  });

  it('refuses an unsafe mirror URL', () => {
    expect(() => resolve(sourcegraph, 'local', 'xs', '5.2.0', { runId, mirrors: { k3s: 'http://x/$(id)' } })).toThrow(/--mirror k3s: expected an http\(s\) URL/);
  });

  it('refuses unknown targets, sizes and sizes the definition lacks', () => {
    expect(() => resolve(sourcegraph, 'openstack', 'xs', '5.2.0', { runId })).toThrow('--target: expected one of aws, azure, gcp, local, found "openstack"');
    expect(() => resolve(sourcegraph, 'aws', 'xxl', '5.2.0', { runId })).toThrow('--size: expected one of XS, S, M, L, XL (any case), found "xxl"');
    expect(() => resolve(gitea, 'gcp', 'xl', '1.22.0', { runId })).toThrow('images/gitea.yaml: sizes: no size XL (defined: S)');
    expect(() => resolve(gitea, 'aws', 's', '1.22.0', { runId })).toThrow('images/gitea.yaml: targets: no target aws (defined: gcp, local)');
  });

  it('refuses a pre-release for an Azure gallery, which needs MAJOR.MINOR.PATCH', () => {
    const err = captureInputError(() => resolve(sourcegraph, 'azure', 'xs', '5.2.0-rc.1', { runId }));
    expect(err.issues[0]).toMatchObject({ file: 'images/sourcegraph.yaml', field: 'version' });
    expect(resolve(sourcegraph, 'gcp', 'xs', '5.2.0-rc.1', { runId }).targetPlan).toMatchObject({ names: { rootImage: 'sourcegraph-5-2-0-rc-1-xs-rgolden01' } });
  });

  it('refuses a malformed run id', () => {
    expect(() => resolve(sourcegraph, 'aws', 'xs', '5.2.0', { runId: 'Run 1' })).toThrow(/run id: expected 6-16 lowercase/);
  });
});

function captureInputError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (err) {
    if (err instanceof InputError) return err;
    throw err;
  }
  throw new Error('expected an InputError');
}
