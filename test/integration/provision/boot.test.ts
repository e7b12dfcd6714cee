/**
 * The boot script's state machine, on images provisioned in throwaway Debian 12 roots (see
 * test/support/sandbox): each sandbox run is one boot (fresh /run and processes, `mount -a` as
 * systemd would, the stand-in K3s started through the fake systemctl), the root and data disks
 * persist. Images of two product versions share one data volume to swap root volumes as customers
 * do: first boot, same version, upgrade (5.2.0 -> 5.10.0, semantic), refused downgrade, override
 * values, interrupted upgrade completed by the next boot, missing data volume.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Plan } from '../../../src/definition/plan.js';
import { NETWORK_STEPS, planFor, startArtifacts, type ArtifactFixture } from '../../support/provision-fixture.js';
import { provisionRootfs } from '../../support/sandbox/rootfs.js';
import { Sandbox, type RunResult } from '../../support/sandbox/sandbox.js';

const isRoot = process.getuid?.() === 0;

interface Event {
  tool: string;
  event: string;
  argv: string[];
  release?: string;
  chart?: { path: string; version: string };
  values?: { path: string; content: string }[];
}

describe.skipIf(!isRoot)('kiln-boot: deploy, upgrade, refuse to downgrade', () => {
  let dir: string;
  let artifacts: ArtifactFixture;
  /** Never booted images: root + blank-but-formatted data volume, per product version. */
  let image520: Sandbox;
  let image5100: Sandbox;
  let n = 0;

  const fresh = async (image: Sandbox) => image.clone(path.join(dir, `m${++n}`));

  /** One boot; returns its result and the stand-in events it caused. */
  async function boot(machine: Sandbox, env: Record<string, string> = {}, options: { mountAll?: boolean } = {}): Promise<RunResult & { events: Event[] }> {
    const before = (await machine.standinLog()).length;
    const result = await machine.run(['/usr/local/lib/kiln/kiln-boot.sh'], { mountAll: options.mountAll ?? true, env });
    const events = (await machine.standinLog()).slice(before) as unknown as Event[];
    return { ...result, events };
  }
  const dataVersion = (m: Sandbox) => m.check('cat /mnt/data/.sourcegraph-version 2>/dev/null || echo none', { mountAll: true });
  const upgrades = (events: Event[]) => events.filter((e) => e.tool === 'helm' && e.event === 'upgrade');
  const started = (events: Event[]) => events.filter((e) => e.event === 'server-ready').length;

  beforeAll(async () => {
    const rootfs = await provisionRootfs();
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-boot-'));
    artifacts = await startArtifacts();
    const plans: Record<string, Plan> = {};
    for (const v of ['5.2.0', '5.10.0']) plans[v] = await planFor('images/sourcegraph.yaml', 'local', 'xs', v, artifacts.mirrors());
    const provision = async (sb: Sandbox, plan: Plan, ids: string[]) => {
      for (const step of plan.provision.filter((s) => ids.includes(s.id))) {
        const r = await sb.runStep(step, { network: NETWORK_STEPS.has(step.id) ? 'host' : 'none', mountAll: true });
        if (r.exitCode !== 0) throw new Error(`step ${step.id} failed:\n${r.all}`);
      }
    };
    const common = await Sandbox.create(path.join(dir, 'common'), rootfs);
    await provision(common, plans['5.2.0'] as Plan, ['base', 'data-volume', 'kernel', 'firewall', 'k3s', 'helm']);
    image520 = await common.clone(path.join(dir, 'image-5.2.0'));
    image5100 = await common.clone(path.join(dir, 'image-5.10.0'));
    await provision(image520, plans['5.2.0'] as Plan, ['charts', 'version', 'generalize']);
    await provision(image5100, plans['5.10.0'] as Plan, ['charts', 'version', 'generalize']);
  }, 1_800_000);

  afterAll(async () => {
    await artifacts?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('first boot: starts K3s, installs every chart with the XS values, then writes the data version', async () => {
    const m = await fresh(image520);
    const first = await boot(m);
    expect(first.exitCode, first.all).toBe(0);
    expect(first.all).toContain('root version 5.2.0, data version none: first-boot');
    expect(started(first.events)).toBe(1);
    const installs = upgrades(first.events);
    expect(installs.map((e) => [e.release, e.chart?.path, e.chart?.version])).toEqual([
      ['sourcegraph', '/opt/kiln/charts/sourcegraph-5.2.0.tgz', '5.2.0'],
      ['sourcegraph-executor-k8s', '/opt/kiln/charts/sourcegraph-executor-k8s-5.2.0.tgz', '5.2.0'],
    ]);
    expect(installs[0]?.argv).toEqual(expect.arrayContaining(['--install', '--namespace', 'default', '--create-namespace', '--wait']));
    expect(installs[0]?.values?.map((v) => v.content)).toEqual([await readFile('images/values/sourcegraph/xs.yaml', 'utf8')].map((t) => t.trimEnd()));
    expect(installs[1]?.values?.map((v) => v.content)).toEqual([(await readFile('images/values/executor/xs.yaml', 'utf8')).trimEnd()]);
    expect(await dataVersion(m)).toBe('5.2.0\n');
    // The cluster's identity was created now, the token on the data volume.
    expect(await m.check('stat -c %a /mnt/data/.kiln/k3s-token; ls /var/lib/rancher/k3s/server/token /etc/rancher/node/password', { mountAll: true })).toBe(
      '600\n/etc/rancher/node/password\n/var/lib/rancher/k3s/server/token\n',
    );
    expect(await m.check('cat /var/log/kiln-boot.log')).toMatch(/first-boot to 5\.2\.0 done \(2 releases\); data version is now 5\.2\.0/);

    // Same version on the next boot: K3s only.
    const second = await boot(m);
    expect(second.exitCode, second.all).toBe(0);
    expect(second.all).toContain('root version 5.2.0, data version 5.2.0: same');
    expect(second.all).toContain('version 5.2.0 already deployed; K3s started, nothing else to do');
    expect(started(second.events)).toBe(1);
    expect(second.events.filter((e) => e.tool === 'helm').map((e) => e.event)).toEqual([]);
    expect((await m.check('grep -c "boot .*: start" /var/log/kiln-boot.log')).trim()).toBe('2');
  });

  it('mounts the data volume itself when boot did not (a late disk)', async () => {
    const m = await fresh(image520);
    const result = await boot(m, {}, { mountAll: false });
    expect(result.exitCode, result.all).toBe(0);
    expect(result.all).toContain('mounted /mnt/data (label sgdata)');
    expect(result.all).toContain('bound /mnt/data/k3s/db on /var/lib/rancher/k3s/server/db');
  });

  it('upgrades a 5.2.0 data volume under a 5.10.0 root (semantic order), keeping the cluster identity', async () => {
    const old = await fresh(image520);
    expect((await boot(old)).exitCode).toBe(0);
    const m = await image5100.withDataOf(old, path.join(dir, `m${++n}`));
    const result = await boot(m);
    expect(result.exitCode, result.all).toBe(0);
    expect(result.all).toContain('root version 5.10.0, data version 5.2.0: upgrade');
    // A new root volume: same token (from the data volume) and node password restored, so K3s
    // accepts the existing datastore.
    expect(result.all).toContain('restored the node password from the data volume');
    expect(started(result.events)).toBe(1);
    expect(upgrades(result.events).map((e) => [e.release, e.chart?.version])).toEqual([
      ['sourcegraph', '5.10.0'],
      ['sourcegraph-executor-k8s', '5.10.0'],
    ]);
    expect(result.events.filter((e) => e.event === 'deployed').map((e) => (e as unknown as { revision: number }).revision)).toEqual([2, 2]);
    expect(await dataVersion(m)).toBe('5.10.0\n');
  });

  it('refuses to downgrade: K3s keeps running the existing release, nothing is deployed', async () => {
    const newer = await fresh(image5100);
    expect((await boot(newer)).exitCode).toBe(0);
    const m = await image520.withDataOf(newer, path.join(dir, `m${++n}`));
    const result = await boot(m);
    expect(result.exitCode).toBe(3);
    expect(result.all).toContain('REFUSING TO DOWNGRADE: the data volume holds version 5.10.0, newer than this root volume\'s 5.2.0');
    expect(started(result.events)).toBe(1);
    expect(result.events.filter((e) => e.tool === 'helm').map((e) => e.event)).toEqual([]);
    expect(await dataVersion(m)).toBe('5.10.0\n');
    expect(await m.check('tail -n 1 /var/log/kiln-boot.log')).toContain('REFUSING TO DOWNGRADE');
  });

  it('deploys with the override values file from the data volume, after the size values', async () => {
    const m = await fresh(image520);
    await m.check('printf "frontend:\\n  replicaCount: 3\\n" > /mnt/data/override.yaml', { mountAll: true });
    const result = await boot(m);
    expect(result.exitCode, result.all).toBe(0);
    for (const e of upgrades(result.events)) {
      expect(e.values?.at(-1)).toMatchObject({ path: '/mnt/data/override.yaml', content: 'frontend:\n  replicaCount: 3' });
      expect(e.values).toHaveLength(2);
    }
  });

  it('completes an upgrade interrupted by a power cut on the next boot', async () => {
    const old = await fresh(image520);
    expect((await boot(old)).exitCode).toBe(0);
    const m = await image5100.withDataOf(old, path.join(dir, `m${++n}`));
    await m.check('mkdir -p /etc/kiln-standins && echo "crash-during-upgrade sourcegraph-executor-k8s" > /etc/kiln-standins/faults');
    const cut = await boot(m);
    expect(cut.exitCode).not.toBe(0);
    expect(cut.events.some((e) => e.event === 'fault')).toBe(true);
    expect(await dataVersion(m)).toBe('5.2.0\n');

    await m.check('rm /etc/kiln-standins/faults');
    const next = await boot(m);
    expect(next.exitCode, next.all).toBe(0);
    expect(next.all).toContain('root version 5.10.0, data version 5.2.0: upgrade');
    expect(next.all).toContain('sourcegraph-executor-k8s: pending-upgrade left by an interrupted boot: rolling back to the previous revision');
    expect(next.events.filter((e) => e.tool === 'helm' && ['rollback', 'upgrade'].includes(e.event)).map((e) => `${e.event} ${e.release ?? ''}`)).toEqual([
      'upgrade sourcegraph',
      'rollback sourcegraph-executor-k8s',
      'upgrade sourcegraph-executor-k8s',
    ]);
    expect(await dataVersion(m)).toBe('5.10.0\n');
  });

  it('starts over a first install cut by a power cut', async () => {
    const m = await fresh(image520);
    await m.check('mkdir -p /etc/kiln-standins && echo "crash-during-install sourcegraph" > /etc/kiln-standins/faults');
    expect((await boot(m)).exitCode).not.toBe(0);
    expect(await dataVersion(m)).toBe('none\n');
    await m.check('rm /etc/kiln-standins/faults');
    const next = await boot(m);
    expect(next.exitCode, next.all).toBe(0);
    expect(next.all).toContain('sourcegraph: install interrupted earlier (pending-install): uninstalling it to start over');
    expect(await dataVersion(m)).toBe('5.2.0\n');
  });

  it('does not start K3s without the data volume', async () => {
    const m = await image520.clone(path.join(dir, `m${++n}`), { withData: false });
    const result = await boot(m, { KILN_BOOT_DATA_TIMEOUT: '2' });
    expect(result.exitCode).not.toBe(0);
    expect(result.all).toContain('the data volume labelled sgdata is not mounted at /mnt/data: K3s not started');
    expect(result.events.filter((e) => e.tool === 'k3s' && e.event === 'server-start')).toEqual([]);
  });
});
