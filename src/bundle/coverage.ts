/**
 * Does a bundle hold everything a plan's provisioning needs? Pure: compares the plan's software
 * with the bundle manifest, by the same bundle paths the bundle was written with.
 */
import type { SoftwarePlan } from '../definition/plan.js';
import { bundlePaths, K3S_AIRGAP_IMAGES, type ArtifactKind, type BundleManifest } from './manifest.js';

/** What the plan needs and the bundle lacks, one line each; empty when it covers the plan. */
export function bundleGaps(software: SoftwarePlan, manifest: BundleManifest): string[] {
  const byPath = new Map(manifest.artifacts.map((a) => [a.path, a]));
  const gaps: string[] = [];
  const need = (path: string, kind: ArtifactKind, what: string, pinned?: string) => {
    const artifact = byPath.get(path);
    if (artifact?.kind !== kind) gaps.push(`no ${what} (${path})`);
    else if (pinned && artifact.sha256 !== pinned) gaps.push(`its ${what} has sha256 ${artifact.sha256}, the definition pins ${pinned}`);
  };
  const { k3s, helm, charts } = software;
  need(bundlePaths.k3s(k3s.version, 'k3s'), 'k3s-binary', `K3s ${k3s.version} binary`, k3s.sha256);
  need(bundlePaths.k3s(k3s.version, K3S_AIRGAP_IMAGES), 'k3s-airgap-images', `K3s ${k3s.version} airgap images`);
  need(bundlePaths.helm(helm.version), 'helm-archive', `Helm ${helm.version}`, helm.sha256);
  for (const chart of charts) {
    need(bundlePaths.chart(chart.chart, chart.version), 'chart', `chart ${chart.chart} ${chart.version}`);
    for (const image of chart.images) need(bundlePaths.image(image), 'image', `image ${image}`);
  }
  return [...new Set(gaps)];
}
