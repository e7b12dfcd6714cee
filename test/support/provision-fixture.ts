/**
 * Shared set-up for the provisioning tests: the stand-in artifacts every definition in images/
 * needs (plus newer product versions for upgrade tests), an artifact server for them, and plans
 * whose mirrors point at that server.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import type { Plan, ProvisionStep } from '../../src/definition/plan.js';
import { loadDefinition } from '../../src/definition/load.js';
import { resolve } from '../../src/definition/resolve.js';
import { startArtifactServer, type ArtifactServer } from './artifact-server.js';
import { buildArtifacts, type ArtifactSpec, type BuiltArtifacts } from './standins/build.js';

/** Product versions the tests deploy and upgrade between (5.10.0 > 5.9.0 > 5.2.0 semantically). */
export const PRODUCT_VERSIONS = ['5.2.0', '5.9.0', '5.10.0'];
/** An image on the stand-in registry, pulled through the registry mirror in the image tests. */
export const TEST_IMAGE = 'kiln/hello:1.0';
export const TEST_REGISTRY = 'registry.kiln.test';

/** K3s, Helm and chart versions of every definition in images/, plus PRODUCT_VERSIONS for charts
 * that follow the product version. */
export async function artifactSpec(imagesDir = 'images'): Promise<ArtifactSpec> {
  const k3s = new Set<string>();
  const helm = new Set<string>();
  const charts = new Map<string, Set<string>>();
  for (const file of (await readdir(imagesDir)).filter((f) => f.endsWith('.yaml'))) {
    const def = parse(await readFile(path.join(imagesDir, file), 'utf8')) as {
      k3s: { version: string };
      helm: { version: string };
      charts: { chart: string; version?: string }[];
    };
    k3s.add(def.k3s.version);
    helm.add(def.helm.version);
    for (const chart of def.charts) {
      const versions = charts.get(chart.chart) ?? new Set<string>();
      for (const v of chart.version ? [chart.version] : PRODUCT_VERSIONS) versions.add(v);
      charts.set(chart.chart, versions);
    }
  }
  return {
    k3s: [...k3s].sort(),
    helm: [...helm].sort(),
    charts: [...charts].map(([name, versions]) => ({ name, versions: [...versions] })),
    images: [TEST_IMAGE],
  };
}

export interface ArtifactFixture {
  built: BuiltArtifacts;
  server: ArtifactServer;
  /** Mirrors as the guest (or sandbox) reaches the server. */
  mirrors: (base?: string) => Mirrors;
  /** Stops the server and removes the files. */
  close(): Promise<void>;
}

export async function startArtifacts(options: { requireToken?: boolean } = {}): Promise<ArtifactFixture> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'kiln-artifacts-'));
  const built = await buildArtifacts(root, await artifactSpec());
  const server = await startArtifactServer({ root, registry: { requireToken: options.requireToken ?? true } });
  return {
    built,
    server,
    mirrors: (base = server.url) => ({ k3s: `${base}/k3s`, helm: `${base}/helm`, charts: `${base}/charts` }),
    close: async () => {
      await server.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

export type Mirrors = { k3s: string; helm: string; charts: string };

export async function planFor(definition: string, target: string, size: string, version: string, mirrors: Mirrors): Promise<Plan> {
  const loaded = await loadDefinition(definition);
  return resolve(loaded, target, size, version, { runId: 'rkilntest01', mirrors });
}

export function stepOf(plan: Plan, id: string): ProvisionStep {
  const step = plan.provision.find((s) => s.id === id);
  if (!step) throw new Error(`plan has no step ${id}`);
  return step;
}

/** Steps that download from the artifact server (they run with the host network in sandboxes). */
export const NETWORK_STEPS = new Set(['k3s', 'helm', 'charts']);

/** Where the provisioning scripts may change things (for "the second run changed nothing"). */
export const PROVISIONED_PATHS = ['/etc', '/usr/local', '/opt/kiln', '/var/lib/rancher', '/var/lib/kubelet', '/mnt/data', '/root', '/home', '/var/lib/dbus', '/var/lib/systemd'];
