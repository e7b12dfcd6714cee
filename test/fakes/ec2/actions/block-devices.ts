/**
 * RunInstances block device mappings: the image's mappings overridden and extended by the
 * request's `BlockDeviceMapping.N` entries, checked the way EC2 checks them (sizes per volume
 * type, snapshot size, iops/throughput only where the type supports them, KmsKeyId needs
 * Encrypted).
 */
import { Ec2Error } from '../errors.js';
import type { ImageMapping, ImageRecord } from '../model.js';
import { defaultKmsKey, type ActionContext } from './common.js';

const SIZE_LIMITS: Record<string, [number, number]> = {
  gp2: [1, 16384],
  gp3: [1, 16384],
  io1: [4, 16384],
  io2: [4, 65536],
  st1: [125, 16384],
  sc1: [125, 16384],
  standard: [1, 1024],
};

function invalidMapping(message: string): Ec2Error {
  return new Ec2Error('InvalidBlockDeviceMapping', message);
}

/** Checks a volume's type, size, iops and throughput as EC2 does; fills in the type's defaults. */
export function checkVolume(ctx: ActionContext, m: ImageMapping): ImageMapping {
  const limits = SIZE_LIMITS[m.volumeType];
  if (!limits) {
    throw new Ec2Error('InvalidParameterValue', `Value (${m.volumeType}) for parameter volumeType is invalid.`);
  }
  if (m.volumeSize < limits[0] || m.volumeSize > limits[1]) {
    throw new Ec2Error(
      'InvalidParameterValue',
      `Volume size ${m.volumeSize} GiB for ${m.volumeType} must be between ${limits[0]} and ${limits[1]} GiB.`,
    );
  }
  const out = { ...m };
  if (m.volumeType === 'gp3') {
    out.iops = m.iops ?? 3000;
    out.throughput = m.throughput ?? 125;
    if (out.iops < 3000 || out.iops > 16000) {
      throw new Ec2Error('InvalidParameterValue', `Iops ${out.iops} for gp3 must be between 3000 and 16000.`);
    }
    if (out.throughput < 125 || out.throughput > 1000) {
      throw new Ec2Error('InvalidParameterValue', `Throughput ${out.throughput} for gp3 must be between 125 and 1000.`);
    }
  } else if (m.volumeType === 'io1' || m.volumeType === 'io2') {
    if (m.iops === undefined) {
      throw new Ec2Error('InvalidParameterCombination', `The parameter iops must be specified for ${m.volumeType} volumes.`);
    }
    out.throughput = undefined;
  } else {
    if (m.iops !== undefined) {
      throw new Ec2Error('InvalidParameterCombination', `The parameter iops is not supported for ${m.volumeType} volumes.`);
    }
    out.iops = undefined;
  }
  if (m.throughput !== undefined && m.volumeType !== 'gp3') {
    throw new Ec2Error('InvalidParameterCombination', `The parameter throughput is not supported for ${m.volumeType} volumes.`);
  }
  if (out.encrypted && !out.kmsKeyId) out.kmsKeyId = defaultKmsKey(ctx);
  return out;
}

/** The volumes an instance launched from `image` with these request mappings gets, root first. */
export function resolveMappings(ctx: ActionContext, image: ImageRecord): ImageMapping[] {
  const { state, region, params } = ctx;
  const result = new Map(image.mappings.map((m) => [m.deviceName, { ...m }]));
  const seen = new Set<string>();
  for (const req of params.structs('BlockDeviceMapping')) {
    const device = req.str('DeviceName');
    if (!device) throw new Ec2Error('MissingParameter', 'The request must contain the parameter deviceName');
    if (seen.has(device)) throw invalidMapping(`The device '${device}' is used in more than one block-device mapping`);
    seen.add(device);
    if (req.has('NoDevice')) {
      if (device === image.rootDeviceName) throw invalidMapping('The root device cannot be suppressed with NoDevice');
      result.delete(device);
      continue;
    }
    const ebs = req.struct('Ebs');
    if (!ebs) continue; // instance-store (VirtualName) mappings are not modelled
    const base = result.get(device);
    const snapshotId = ebs.str('SnapshotId') ?? base?.snapshotId;
    const snapshot = snapshotId ? state.getSnapshot(region, snapshotId) : undefined;
    const size = ebs.int('VolumeSize') ?? base?.volumeSize ?? snapshot?.volumeSize;
    if (size === undefined) {
      throw new Ec2Error('MissingParameter', `The request must contain the parameter size or snapshotId for ${device}`);
    }
    if (snapshot && size < snapshot.volumeSize) {
      throw invalidMapping(
        `Volume of size ${size}GB is smaller than snapshot '${snapshot.id}', expect size >= ${snapshot.volumeSize}GB`,
      );
    }
    const encrypted = ebs.bool('Encrypted') ?? (snapshot?.encrypted || base?.encrypted || false);
    const kmsKeyId = ebs.str('KmsKeyId') ?? base?.kmsKeyId ?? snapshot?.kmsKeyId;
    if (ebs.has('KmsKeyId') && !encrypted) {
      throw new Ec2Error('InvalidParameterDependency', 'The parameter KmsKeyId requires the parameter Encrypted to be set.');
    }
    if (snapshot?.encrypted && ebs.bool('Encrypted') === false) {
      throw new Ec2Error('InvalidParameterCombination', `Snapshot ${snapshot.id} is encrypted; the volume cannot be unencrypted.`);
    }
    const volumeType = ebs.str('VolumeType') ?? base?.volumeType ?? 'gp2';
    const typeChanged = base !== undefined && volumeType !== base.volumeType;
    result.set(device, {
      deviceName: device,
      snapshotId,
      volumeSize: size,
      volumeType,
      deleteOnTermination: ebs.bool('DeleteOnTermination') ?? base?.deleteOnTermination ?? true,
      encrypted,
      kmsKeyId: encrypted ? kmsKeyId : undefined,
      iops: ebs.int('Iops') ?? (typeChanged ? undefined : base?.iops),
      throughput: ebs.int('Throughput') ?? (typeChanged ? undefined : base?.throughput),
    });
  }
  const mappings = [...result.values()].map((m) => checkVolume(ctx, m));
  const root = mappings.filter((m) => m.deviceName === image.rootDeviceName);
  const rest = mappings.filter((m) => m.deviceName !== image.rootDeviceName);
  rest.sort((a, b) => a.deviceName.localeCompare(b.deviceName));
  return [...root, ...rest];
}
