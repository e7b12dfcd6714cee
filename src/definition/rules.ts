/**
 * Rules that span several fields and so cannot live in the schema's per-field validators.
 * Each returns the path of the offending field and what is wrong.
 */
import { cidrsOverlap } from './values.js';
import type { Definition } from './schema.js';

export interface RuleIssue {
  path: PropertyKey[];
  message: string;
}

export function crossFieldIssues(def: Definition): RuleIssue[] {
  const issues: RuleIssue[] = [];
  const { k3s, dataVolume, charts, sizes } = def;

  if (cidrsOverlap(k3s.clusterCidr, k3s.serviceCidr)) {
    issues.push({ path: ['k3s', 'serviceCidr'], message: `overlaps clusterCidr ${k3s.clusterCidr}; pods and services need disjoint networks` });
  }
  if (dataVolume.filesystem === 'xfs' && dataVolume.label.length > 12) {
    issues.push({ path: ['dataVolume', 'label'], message: `an xfs label has at most 12 characters, found ${dataVolume.label.length}` });
  }
  const linkPaths = new Set<string>();
  dataVolume.links.forEach((link, i) => {
    if (linkPaths.has(link.path)) issues.push({ path: ['dataVolume', 'links', i, 'path'], message: `${link.path} is linked twice` });
    linkPaths.add(link.path);
    if (link.path === '/' || dataVolume.mountPoint.startsWith(`${link.path}/`) || link.path === dataVolume.mountPoint) {
      issues.push({ path: ['dataVolume', 'links', i, 'path'], message: `cannot link ${link.path}: it contains the data volume's mount point` });
    }
  });

  const releases = new Set<string>();
  charts.forEach((chart, i) => {
    if (releases.has(chart.name)) issues.push({ path: ['charts', i, 'name'], message: `release name "${chart.name}" is used twice` });
    releases.add(chart.name);
  });
  for (const [size, spec] of Object.entries(sizes)) {
    for (const release of Object.keys(spec?.values ?? {})) {
      if (!releases.has(release)) {
        issues.push({ path: ['sizes', size, 'values', release], message: `no chart named "${release}" (charts: ${[...releases].join(', ') || 'none'})` });
      }
    }
  }

  const gallery = def.publish.azure?.gallery;
  if (gallery && !def.targets.azure) issues.push({ path: ['publish', 'azure'], message: 'publishing to Azure needs targets.azure' });
  if (def.publish.aws?.launchPermissions.public && def.targets.aws?.encrypted) {
    issues.push({ path: ['publish', 'aws', 'launchPermissions', 'public'], message: 'EC2 cannot make an AMI with encrypted snapshots public: set targets.aws.encrypted to false, or share with accounts instead' });
  }
  if (def.publish.aws && !def.targets.aws) issues.push({ path: ['publish', 'aws'], message: 'publishing to AWS needs targets.aws' });
  if (def.publish.gcp && !def.targets.gcp) issues.push({ path: ['publish', 'gcp'], message: 'publishing to GCE needs targets.gcp' });
  return issues;
}
