/**
 * The release matrix in one run: aws,gcp,azure x all five sizes (15 builds at once) through the real
 * pipeline and drivers against the wire-level fakes, with a delay on every state transition and a
 * tenth of all requests throttled (see test/support/matrix-world.ts). Checks every manifest entry
 * (status, versions, source image, artifacts per region, timings, run id) against what the fakes
 * hold, that nothing temporary is left anywhere, that each build wrote its full log, and that every
 * request of every build went through the one rate limiter of its account and region.
 *
 * How long the run takes next to its slowest build is measured by bench/matrix.ts, not here.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Plan } from '../../../src/definition/plan.js';
import { STEP_ORDER } from '../../../src/pipeline/build.js';
import type { Manifest, ManifestBuild } from '../../../src/pipeline/manifest.js';
import type { RunResult } from '../../../src/pipeline/run.js';
import { readManifest } from '../../../src/release/manifest-schema.js';
import { ALL_REGIONS } from '../aws/world.js';
import { PROJECT } from '../gcp/world.js';
import { CREDENTIALS } from '../../fakes/ec2/testkit.js';
import { startMatrixWorld, type MatrixWorld } from '../../support/matrix-world.js';

const RUN_ID = 'rmatrix0001';
let world: MatrixWorld;
let plans: Plan[];
let run: RunResult;
let manifest: Manifest;
let manifestPath: string;

beforeAll(async () => {
  world = await startMatrixWorld();
  plans = await world.plans(RUN_ID);
  manifestPath = join(world.stateDir, 'out', 'kiln-manifest.json');
  run = await world.run(plans, { manifestPath });
  manifest = await readManifest(manifestPath);
}, 600_000);
afterAll(async () => world?.close());

const entryOf = (plan: Plan): ManifestBuild => {
  const entry = manifest.builds.find((b) => b.buildId === plan.buildId);
  if (!entry) throw new Error(`no manifest entry for ${plan.buildId}`);
  return entry;
};
const byTarget = (target: string) => plans.filter((p) => p.target === target);

describe('a 3 target x 5 size matrix in one run', () => {
  it('runs all 15 builds and every one succeeds despite the throttling', () => {
    expect(plans.map((p) => `${p.target}-${p.size}`)).toEqual(['aws', 'gcp', 'azure'].flatMap((t) => ['XS', 'S', 'M', 'L', 'XL'].map((s) => `${t}-${s}`)));
    expect(run.results.map((r) => [r.buildId, r.status, r.error?.message])).toEqual(plans.map((p) => [p.buildId, 'succeeded', undefined]));
    // Throttling really happened in every cloud, and was retried.
    expect(world.ec2.faults.served.throttle).toBeGreaterThan(0);
    expect(world.gce.faults.served.throttle).toBeGreaterThan(0);
    expect(world.arm.faults.served.throttle).toBeGreaterThan(0);
  });

  it('writes one manifest for the run, the same in the state dir and at --manifest', async () => {
    const definitionSha = createHash('sha256').update(await readFile('images/sourcegraph.yaml')).digest('hex');
    expect(manifest).toMatchObject({ manifestVersion: 1, runId: RUN_ID, version: '5.2.0', definition: { name: 'sourcegraph', path: 'images/sourcegraph.yaml', sha256: definitionSha } });
    expect(manifest.builds.map((b) => b.buildId)).toEqual(plans.map((p) => p.buildId));
    expect(await readManifest(run.paths.manifest)).toEqual(manifest);
  });

  it('records per build its target, size, status, versions, timings and run id', () => {
    for (const plan of plans) {
      const entry = entryOf(plan);
      expect(entry).toMatchObject({
        buildId: `${RUN_ID}-${plan.target}-${plan.size.toLowerCase()}`,
        target: plan.target,
        size: plan.size,
        version: '5.2.0',
        status: 'succeeded',
        k3sVersion: 'v1.29.6+k3s2',
        helmVersion: 'v3.14.4',
        charts: plan.software.charts.map((c) => ({ release: c.release, chart: c.chart, version: '5.2.0' })),
        leftovers: [],
      });
      expect(entry.error).toBeUndefined();
      expect(Object.keys(entry.timingsMs)).toEqual([...STEP_ORDER]);
      const started = Date.parse(entry.startedAt ?? '');
      const finished = Date.parse(entry.finishedAt ?? '');
      expect(started).toBeGreaterThanOrEqual(Date.parse(manifest.startedAt));
      expect(finished).toBeLessThanOrEqual(Date.parse(manifest.updatedAt));
      // The steps ran one after the other inside the build's time.
      const steps = Object.values(entry.timingsMs).reduce((a, b) => a + b, 0);
      expect(steps).toBeLessThanOrEqual(finished - started);
    }
  });

  it('records the source image each build started from', () => {
    const amis = new Set(byTarget('aws').map((p) => entryOf(p).sourceImage));
    expect(amis.size).toBe(1);
    const [ami] = amis;
    const id = /^(ami-[0-9a-f]{17}) \((al2023-ami-[^)]+)\)$/.exec(ami ?? '');
    expect(id, ami).not.toBeNull();
    const base = world.ec2.state.records('us-west-2').images.get(id?.[1] ?? '');
    expect(base).toMatchObject({ name: id?.[2], launchGroupAll: true });

    for (const plan of byTarget('gcp')) {
      const source = entryOf(plan).sourceImage ?? '';
      expect(source).toMatch(/^https:\/\/www\.googleapis\.com\/compute\/v1\/projects\/ubuntu-os-cloud\/global\/images\/ubuntu-2404-/);
      expect(world.gce.state.getImage('ubuntu-os-cloud', source.split('/').pop() ?? '')?.family).toBe('ubuntu-2404-lts-amd64');
    }
    for (const plan of byTarget('azure')) expect(entryOf(plan).sourceImage).toBe('Canonical:ubuntu-24_04-lts:server:1.0.0');
  });

  it('lists the AMIs of every region, and EC2 holds exactly those, available and public', () => {
    for (const plan of byTarget('aws')) {
      const { artifacts } = entryOf(plan);
      const name = plan.targetPlan.kind === 'aws' ? plan.targetPlan.names.image : '';
      expect(artifacts.map((a) => a.region).sort()).toEqual([...ALL_REGIONS].sort());
      for (const artifact of artifacts) {
        expect(artifact).toMatchObject({ kind: 'ami', name, disk: 'both' });
        const image = world.ec2.state.records(artifact.region ?? '').images.get(artifact.id);
        expect(image, `${artifact.id} in ${artifact.region}`).toMatchObject({ name, state: 'available', launchGroupAll: true });
      }
    }
    const made = ALL_REGIONS.flatMap((region) => world.ec2.state.liveResources(region).images);
    expect(made.sort()).toEqual(byTarget('aws').flatMap((p) => entryOf(p).artifacts.map((a) => a.id)).sort());
  });

  it('lists both GCE images of every size, each the head of its own size\'s family and none deprecated', () => {
    for (const plan of byTarget('gcp')) {
      const t = plan.targetPlan.kind === 'gcp' ? plan.targetPlan : undefined;
      const { artifacts } = entryOf(plan);
      expect(artifacts.map((a) => [a.kind, a.disk, a.name, a.region])).toEqual([
        ['image', 'root', t?.names.rootImage, 'us'],
        ['image', 'data', t?.names.dataImage, 'us'],
      ]);
      for (const artifact of artifacts) {
        const image = world.gce.state.getImage(PROJECT, artifact.name ?? '');
        expect(artifact.id).toBe(world.gce.state.imageLink({ project: PROJECT, name: artifact.name ?? '' }));
        expect(image, artifact.name).toMatchObject({ status: 'READY', storageLocations: ['us'] });
        expect(image?.deprecated).toBeUndefined();
        expect(image?.iam.bindings).toEqual([{ role: 'roles/compute.imageUser', members: ['allAuthenticatedUsers'] }]);
      }
      expect(world.gce.state.getImage(PROJECT, t?.names.rootImage ?? '')?.family).toBe(`sourcegraph-${plan.size.toLowerCase()}`);
    }
    expect(world.gce.state.live().images).toHaveLength(10);
  });

  it('lists the managed image and the gallery version in both regions of every Azure size', () => {
    const sub = world.arm.subscriptionId;
    for (const plan of byTarget('azure')) {
      const size = plan.size.toLowerCase();
      const name = plan.targetPlan.kind === 'azure' ? plan.targetPlan.names.image : '';
      const image = `/subscriptions/${sub}/resourceGroups/sourcegraph-images/providers/Microsoft.Compute/images/${name}`;
      const version = `/subscriptions/${sub}/resourceGroups/sourcegraph-images/providers/Microsoft.Compute/galleries/sourcegraph_gallery/images/sourcegraph-${size}/versions/5.2.0`;
      expect(entryOf(plan).artifacts.map((a) => [a.kind, a.id, a.region])).toEqual([
        ['azure-managed-image', image, 'eastus'],
        ['azure-gallery-image-version', version, 'eastus'],
        ['azure-gallery-image-version', version, 'westeurope'],
      ]);
      const live = world.arm.liveResourceIds().map((id) => id.toLowerCase());
      expect(live).toContain(image.toLowerCase());
      expect(live).toContain(version.toLowerCase());
    }
  });

  it('leaves nothing temporary in any cloud, nor in the ledger', async () => {
    for (const region of ALL_REGIONS) {
      const live = world.ec2.state.liveResources(region);
      expect({ region, instances: live.instances, volumes: live.volumes, keyPairs: live.keyPairs, securityGroups: live.securityGroups }).toEqual({
        region,
        instances: [],
        volumes: [],
        keyPairs: [],
        securityGroups: [],
      });
    }
    const gce = world.gce.state.live();
    expect({ instances: gce.instances, disks: gce.disks, firewalls: gce.firewalls }).toEqual({ instances: [], disks: [], firewalls: [] });
    const arm = world.arm.inventory();
    expect(Object.keys(arm.resources).sort()).toEqual([
      'Microsoft.Compute/galleries',
      'Microsoft.Compute/galleries/images',
      'Microsoft.Compute/galleries/images/versions',
      'Microsoft.Compute/images',
      'Microsoft.Resources/resourceGroups',
    ]);
    expect(arm.resources['Microsoft.Resources/resourceGroups']).toHaveLength(1);
    expect(JSON.parse(await readFile(run.paths.ledger, 'utf8')).entries).toEqual([]);
  });

  it('writes one full log per build: its steps, its cloud calls and how it ended', async () => {
    for (const plan of plans) {
      const log = await readFile(run.paths.build(plan.buildId).log, 'utf8');
      for (const step of STEP_ORDER) expect(log).toMatch(new RegExp(`step ${step}: done in `));
      expect(log).toContain(`${plan.target}: `);
      expect(log.trimEnd().split('\n').at(-1)).toMatch(new RegExp(`build ${plan.buildId}: succeeded$`));
    }
  });

  it('sent every request through the one limiter of its account and region, shared by all five builds', () => {
    const limiters = new Map(world.rateLimits.all().map((l) => [l.name, l]));
    const host = new URL(world.arm.url).host;
    expect([...limiters.keys()].sort()).toEqual(
      [
        ...ALL_REGIONS.map((r) => `aws/${CREDENTIALS.accessKeyId}/${r}`),
        `gcp/${PROJECT}/global`,
        `gcp/${PROJECT}/us-central1`,
        'gcp/ubuntu-os-cloud/global',
        `azure/${world.arm.subscriptionId}/${host}`,
      ].sort(),
    );
    // What each limiter let through is exactly what the fakes received under that key.
    const seen = new Map<string, { read: number; write: number }>();
    const count = (key: string, kind: 'read' | 'write') => {
      const c = seen.get(key) ?? { read: 0, write: 0 };
      c[kind]++;
      seen.set(key, c);
    };
    for (const call of world.ec2.calls) count(`aws/${CREDENTIALS.accessKeyId}/${call.region}`, /^(Describe|Get)/.test(call.action) ? 'read' : 'write');
    for (const request of world.gce.requests) {
      const [, project, scope, where] = /^\/compute\/v1\/projects\/([^/]+)\/(zones|regions|global)\/?([^/]*)/.exec(request.path) ?? [];
      const region = scope === 'zones' ? where?.replace(/-[a-z]$/, '') : scope === 'regions' ? where : 'global';
      count(`gcp/${project}/${region}`, /\.(get|list|wait)/.test(request.method) ? 'read' : 'write');
    }
    for (const request of world.arm.requests) count(`azure/${world.arm.subscriptionId}/${host}`, request.method === 'GET' ? 'read' : 'write');
    for (const [name, limiter] of limiters) {
      expect({ name, read: limiter.counts.read.calls, write: limiter.counts.write.calls }).toEqual({ name, ...seen.get(name) });
    }
    // Fifteen builds' polling met the limits: some requests had to wait for their turn.
    expect([...limiters.values()].reduce((n, l) => n + l.counts.read.delayed + l.counts.write.delayed, 0)).toBeGreaterThan(0);
  });
});
