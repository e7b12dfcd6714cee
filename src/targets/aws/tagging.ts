/** EC2 tags: the plan's kiln tags plus a Name on everything kiln creates, and reading them back. */
import type { ResourceType, Tag, TagSpecification } from '@aws-sdk/client-ec2';

export const RUN_TAG = 'kiln:run';
export const BUILD_TAG = 'kiln:build';
/** On a finished build's AMIs and their snapshots: products, which no sweep takes. */
export const PUBLISHED_TAG = 'kiln:published';

export function ec2Tags(tags: Record<string, string>, name: string): Tag[] {
  return [...Object.entries(tags).map(([Key, Value]) => ({ Key, Value })), { Key: 'Name', Value: name }];
}

/** TagSpecifications giving every listed resource type the same tags. */
export function tagSpecs(types: ResourceType[], tags: Record<string, string>, name: string): TagSpecification[] {
  return types.map((ResourceType) => ({ ResourceType, Tags: ec2Tags(tags, name) }));
}

export function tagValue(tags: Tag[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}

/** True when a resource found by name carries this build's tag (so it is ours to adopt or delete). */
export function isOurs(tags: Tag[] | undefined, build: string): boolean {
  return tagValue(tags, BUILD_TAG) === build;
}
