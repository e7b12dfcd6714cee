/**
 * `kiln cleanup --sweep`: everything in the given regions that carries the `kiln:run` tag
 * (instances not yet terminated, volumes, snapshots and images of this account, key pairs, security
 * groups), as entries `destroy` can delete, with the creation time EC2 reports where it has one.
 * A finished build's AMIs and snapshots (tagged `kiln:published`) are products and are left out.
 */
import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeKeyPairsCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Filter,
  type Tag,
} from '@aws-sdk/client-ec2';
import type { TaggedResource } from '../target.js';
import type { CallScope, Ec2Api } from './clients.js';
import { BUILD_TAG, PUBLISHED_TAG, RUN_TAG, tagValue } from './tagging.js';

const TAGGED: Filter[] = [{ Name: 'tag-key', Values: [RUN_TAG] }];

interface Found {
  kind: string;
  id?: string;
  name?: string;
  tags?: Tag[];
  created?: Date | string;
  extra?: Record<string, string>;
}

export async function listTaggedIn(api: Ec2Api, region: string, signal: AbortSignal): Promise<TaggedResource[]> {
  const scope: CallScope = { region, resource: `resources tagged ${RUN_TAG}`, signal };
  const found: Found[] = [];
  const instances = await pages(api, scope, 'DescribeInstances', (c, o, NextToken) =>
    c.send(new DescribeInstancesCommand({ Filters: [...TAGGED, { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped', 'shutting-down'] }], NextToken }), o),
  );
  for (const page of instances) {
    for (const i of page.Reservations?.flatMap((r) => r.Instances ?? []) ?? []) {
      found.push({ kind: 'instance', id: i.InstanceId, tags: i.Tags, created: i.LaunchTime, extra: i.ClientToken ? { clientToken: i.ClientToken } : undefined });
    }
  }
  for (const page of await pages(api, scope, 'DescribeVolumes', (c, o, NextToken) => c.send(new DescribeVolumesCommand({ Filters: TAGGED, NextToken }), o))) {
    for (const v of page.Volumes ?? []) found.push({ kind: 'volume', id: v.VolumeId, tags: v.Tags, created: v.CreateTime });
  }
  for (const page of await pages(api, scope, 'DescribeSnapshots', (c, o, NextToken) => c.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: TAGGED, NextToken }), o))) {
    for (const s of page.Snapshots ?? []) found.push({ kind: 'snapshot', id: s.SnapshotId, tags: s.Tags, created: s.StartTime });
  }
  for (const page of await pages(api, scope, 'DescribeImages', (c, o, NextToken) => c.send(new DescribeImagesCommand({ Owners: ['self'], Filters: TAGGED, NextToken }), o))) {
    for (const i of page.Images ?? []) found.push({ kind: 'image', id: i.ImageId, name: i.Name, tags: i.Tags, created: i.CreationDate });
  }
  const keys = await api.call('DescribeKeyPairs', scope, (c, o) => c.send(new DescribeKeyPairsCommand({ Filters: TAGGED }), o));
  for (const k of keys.KeyPairs ?? []) found.push({ kind: 'key-pair', id: k.KeyPairId, name: k.KeyName, tags: k.Tags, created: k.CreateTime });
  for (const page of await pages(api, scope, 'DescribeSecurityGroups', (c, o, NextToken) => c.send(new DescribeSecurityGroupsCommand({ Filters: TAGGED, NextToken }), o))) {
    for (const g of page.SecurityGroups ?? []) found.push({ kind: 'security-group', id: g.GroupId, name: g.GroupName, tags: g.Tags, extra: g.VpcId ? { vpcId: g.VpcId } : undefined });
  }
  return found.filter((f) => !tagValue(f.tags, PUBLISHED_TAG)).flatMap((f) => asTagged(f, region));
}

function asTagged(f: Found, region: string): TaggedResource[] {
  const runId = tagValue(f.tags, RUN_TAG);
  if (!f.id || !runId) return [];
  const created = f.created instanceof Date ? f.created.toISOString() : f.created || undefined;
  return [
    {
      target: 'aws',
      kind: f.kind,
      id: f.id,
      name: f.name ?? tagValue(f.tags, 'Name') ?? f.id,
      runId,
      build: tagValue(f.tags, BUILD_TAG) ?? runId,
      region,
      createdAt: created,
      extra: f.extra,
    },
  ];
}

/** Every page of a paginated describe call. */
async function pages<T extends { NextToken?: string }>(
  api: Ec2Api,
  scope: CallScope,
  action: string,
  send: (client: EC2Client, options: { abortSignal?: AbortSignal }, token: string | undefined) => Promise<T>,
): Promise<T[]> {
  const out: T[] = [];
  let token: string | undefined;
  do {
    const page = await api.call(action, scope, (c, o) => send(c, o, token));
    out.push(page);
    token = page.NextToken;
  } while (token);
  return out;
}
