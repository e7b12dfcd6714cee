/**
 * The base AMI: the newest image of the plan's owners whose name matches its pattern, for x86_64,
 * in state available. EC2 returns images in no particular order and public catalogues hold near
 * misses, so the owners are always passed and the newest is chosen here by CreationDate.
 */
import { DescribeImagesCommand, type Image } from '@aws-sdk/client-ec2';
import { KilnError } from '../../core/errors.js';
import type { AwsTargetPlan } from '../../definition/plan.js';
import type { CallScope, Ec2Api } from './clients.js';

export interface BaseImage {
  id: string;
  name: string;
  rootDeviceName: string;
  /** Size of the image's root snapshot: the root volume cannot be smaller. */
  rootSizeGb?: number;
  creationDate: string;
}

export async function findBaseImage(api: Ec2Api, scope: CallScope, base: AwsTargetPlan['baseImage']): Promise<BaseImage> {
  const images: Image[] = [];
  let nextToken: string | undefined;
  do {
    const page = await api.call('DescribeImages', scope, (c, o) =>
      c.send(
        new DescribeImagesCommand({
          Owners: base.owners,
          Filters: [
            { Name: 'name', Values: [base.name] },
            { Name: 'architecture', Values: [base.architecture] },
            { Name: 'state', Values: ['available'] },
            { Name: 'image-type', Values: ['machine'] },
            { Name: 'root-device-type', Values: ['ebs'] },
          ],
          NextToken: nextToken,
        }),
        o,
      ),
    );
    images.push(...(page.Images ?? []));
    nextToken = page.NextToken;
  } while (nextToken);
  const newest = newestImage(images);
  if (!newest?.ImageId || !newest.RootDeviceName) {
    throw new KilnError('CLOUD', `EC2: no available ${base.architecture} image named '${base.name}' owned by ${base.owners.join(', ')} in ${scope.region}`, {
      resource: base.name,
      region: scope.region,
      code: 'InvalidAMIID.NotFound',
    });
  }
  const root = newest.BlockDeviceMappings?.find((m) => m.DeviceName === newest.RootDeviceName);
  return {
    id: newest.ImageId,
    name: newest.Name ?? newest.ImageId,
    rootDeviceName: newest.RootDeviceName,
    rootSizeGb: root?.Ebs?.VolumeSize,
    creationDate: newest.CreationDate ?? '',
  };
}

/** The image with the latest CreationDate (ISO 8601, so comparable as a date); ties by name. */
export function newestImage(images: Image[]): Image | undefined {
  const time = (image: Image) => Date.parse(image.CreationDate ?? '') || 0;
  return [...images].sort((a, b) => time(b) - time(a) || (b.Name ?? '').localeCompare(a.Name ?? ''))[0];
}
