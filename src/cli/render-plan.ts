/** The readable form of a plan (`kiln plan` without --json). */
import type { Plan, TargetPlan } from '../definition/plan.js';
import type { Output } from './output.js';

export function renderPlan(plan: Plan, out: Output): void {
  out.line(out.bold(`Plan ${plan.buildId}: ${plan.definition.name} ${plan.version}, size ${plan.size}, target ${plan.target}`));
  out.line(`  definition  ${plan.definition.path} (sha256 ${plan.definition.sha256.slice(0, 12)})`);
  out.line(`  machine     ${machineSummary(plan.targetPlan)}`);
  out.line(`  root disk   ${diskSummary(plan.disks.root)}`);
  out.line(`  data disk   ${diskSummary(plan.disks.data)}`);
  out.line(`  ssh         user ${plan.access.sshUser}${plan.access.sshCidr ? ` from ${plan.access.sshCidr}` : ''}`);
  const { bundle, registryMirror } = plan.software;
  const from = (source: string) => (bundle ? 'from the offline bundle' : `from ${source}`);
  out.line(`  k3s         ${plan.software.k3s.version} ${from(plan.software.k3s.baseUrl)}`);
  out.line(`  helm        ${plan.software.helm.version} ${from(plan.software.helm.baseUrl)}`);
  for (const chart of plan.software.charts) {
    const values = chart.valuesFiles.length > 0 ? `, values ${chart.valuesFiles.join(' ')}` : '';
    out.line(`  chart       ${chart.release}: ${chart.chart} ${chart.version} ${from(chart.repository)} in ${chart.namespace}${values}`);
  }
  if (bundle) out.line(`  bundle      ${bundle.path} (manifest sha256 ${bundle.manifestSha256.slice(0, 12)}): nothing is downloaded`);
  if (registryMirror) out.line(`  registry    ${registryMirror.registries.join(', ')} mirrored to ${registryMirror.endpoint}${registryMirror.caFile ? `, CA ${registryMirror.caFile}` : ''}`);
  out.line(`  tags        ${Object.entries(plan.tags).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  out.line();
  out.line(out.bold('Steps'));
  plan.steps.forEach((step, i) => {
    const creates = step.creates.length > 0 ? out.dim(` (creates ${step.creates.join(', ')})`) : '';
    out.line(`  ${i + 1}. ${step.name.padEnd(9)} ${step.description}${creates}`);
    if (step.name === 'provision') {
      for (const p of plan.provision) out.line(`       - ${p.id.padEnd(11)} ${p.description}`);
    }
  });
  out.line();
  out.line(out.bold('Checks') + out.dim(' (kiln validate, kiln build --validate)'));
  for (const check of plan.checks) out.line(`  - ${check.name}${check.expect === undefined ? '' : out.dim(` = ${check.expect}`)}${check.source === 'definition' ? out.dim(' (definition)') : ''}`);
  out.line();
  out.line(out.bold('Result'));
  for (const line of resultSummary(plan.targetPlan)) out.line(`  ${line}`);
}

function machineSummary(t: TargetPlan): string {
  switch (t.kind) {
    case 'aws':
      return `${t.instanceType} in ${t.region}, base: newest ${t.baseImage.name} owned by ${t.baseImage.owners.join(', ')}`;
    case 'azure':
      return `${t.vmSize} in ${t.location}, base: ${t.baseImage.publisher}:${t.baseImage.offer}:${t.baseImage.sku}:${t.baseImage.version}`;
    case 'gcp':
      return `${t.machineType} in ${t.zone}, base: family ${t.baseImage.family} of ${t.baseImage.project}`;
    case 'local':
      return `QEMU ${t.cpus} CPUs ${t.memoryMiB} MiB (${t.accelerator}), base: ${'build' in t.baseImage ? `built ${t.baseImage.build}` : t.baseImage.path}`;
  }
}

function diskSummary(disk: Plan['disks']['root']): string {
  const extras = [disk.type, disk.iops && `${disk.iops} IOPS`, disk.throughput && `${disk.throughput} MB/s`, disk.deviceName && `device ${disk.deviceName}`].filter(Boolean);
  return `${disk.sizeGb} GB${extras.length > 0 ? ` (${extras.join(', ')})` : ''}`;
}

function resultSummary(t: TargetPlan): string[] {
  switch (t.kind) {
    case 'aws': {
      const lines = [`AMI ${t.names.image} in ${t.region}`];
      if (t.publish.regions.length > 0) lines.push(`copied to ${t.publish.regions.join(', ')}`);
      if (t.publish.public) lines.push('launch permission: public');
      if (t.publish.accounts.length > 0) lines.push(`launch permission: accounts ${t.publish.accounts.join(', ')}`);
      return lines;
    }
    case 'azure': {
      const lines = t.publish.managedImage ? [`managed image ${t.names.image}`] : [];
      const g = t.publish.gallery;
      if (g) lines.push(`gallery version ${g.name}/${g.imageDefinition}/${g.version} replicated to ${g.replicationRegions.map((r) => `${r.region} x${r.replicas}`).join(', ') || 'its home region'}`);
      return lines;
    }
    case 'gcp':
      return [
        `images ${t.names.rootImage} and ${t.names.dataImage}${t.publish.family ? ` in family ${t.publish.family}` : ''}`,
        ...t.publish.iam.map((b) => `${b.role}: ${b.members.join(', ')}`),
        ...(t.publish.deprecatePrevious ? ['deprecates the family\'s previous image'] : []),
      ];
    case 'local':
      return [`${t.names.rootImage} and ${t.names.dataImage} as ${t.publish.formats.join(', ')}`];
  }
}
