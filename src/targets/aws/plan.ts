/** What an AWS build launches, names and publishes: pure data from the definition. */
import type { AwsTargetPlan, DiskPlan } from '../../definition/plan.js';
import { InputError } from '../../core/errors.js';
import { checkedName, imageName, resourceName, type NameParts } from '../../definition/names.js';
import type { Definition, SizeSpec } from '../../definition/schema.js';

export function planAws(def: Definition, size: SizeSpec, parts: NameParts, disks: { rootGb: number; dataGb: number }) {
  const target = def.targets.aws;
  const machine = size.aws;
  if (!target || !machine) throw missing('aws', parts);
  const publish = def.publish.aws;
  const targetPlan: AwsTargetPlan = {
    kind: 'aws',
    region: target.region,
    instanceType: machine.instanceType,
    baseImage: { owners: target.baseImage.owners, name: target.baseImage.name, architecture: 'x86_64' },
    subnetId: target.subnetId,
    encrypted: target.encrypted,
    kmsKeyId: target.kmsKeyId,
    names: {
      keyPair: checkedName('ec2', resourceName(parts, 'key'), 'name'),
      securityGroup: checkedName('ec2', resourceName(parts, 'ssh'), 'name'),
      instance: resourceName(parts, 'builder'),
      image: checkedName('ami', imageName(parts, { dots: true }), 'name'),
    },
    publish: {
      regions: (publish?.regions ?? []).filter((r) => r !== target.region),
      public: publish?.launchPermissions.public ?? false,
      accounts: publish?.launchPermissions.accounts ?? [],
    },
  };
  const root: DiskPlan = { sizeGb: disks.rootGb, ...machine.rootVolume };
  const data: DiskPlan = { sizeGb: disks.dataGb, ...machine.dataVolume, deviceName: '/dev/sdf' };
  if (data.type === 'io1' || data.type === 'io2') {
    if (!data.iops) throw new InputError({ field: `sizes.${parts.size}.aws.dataVolume.iops`, message: `${data.type} volumes need provisioned iops` });
  }
  return {
    targetPlan,
    disks: { root, data },
    sshUser: target.sshUser,
    sshCidr: target.sshCidr,
    steps: {
      prepare: ['key-pair', 'security-group'],
      launch: ['instance', 'volume'],
      capture: ['image', 'snapshot'],
      publish: targetPlan.publish.regions.length > 0 ? ['image-copy', 'snapshot'] : [],
    },
  };
}

export function missing(target: string, parts: NameParts): InputError {
  return new InputError({ field: `sizes.${parts.size}.${target}`, message: `size ${parts.size} has no ${target} machine, or targets.${target} is missing` });
}
