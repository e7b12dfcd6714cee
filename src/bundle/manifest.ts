/**
 * The bundle manifest (`kiln-bundle.json`, the first entry of a bundle): what the bundle holds,
 * where each artifact came from and what it was checked against, and each file's size and sha256.
 * Read back with the schema below, since a bundle is a file handed to kiln, not trusted data.
 *
 * Paths inside the bundle follow the release layouts, so the provisioning scripts find a file from
 * the plan alone: k3s/<version>/<file>, helm/<archive>, charts/<chart>-<version>.tgz,
 * images/<normalized image name with / : @ as _>.tar.
 */
import { z } from 'zod';
import { SHA256 } from '../definition/values.js';
import { imageFileName, parseImageRef } from './image-ref.js';

export const BUNDLE_FORMAT = 1;
export const MANIFEST_NAME = 'kiln-bundle.json';
export const K3S_AIRGAP_IMAGES = 'k3s-airgap-images-amd64.tar.zst';

/** A path inside the bundle: relative, no "..", characters the scripts accept. */
const BUNDLE_PATH = /^(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._+-]+(?:\/[A-Za-z0-9._+-]+)*$/;

export const ARTIFACT_KINDS = ['k3s-binary', 'k3s-airgap-images', 'helm-archive', 'chart', 'image'] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];

const artifactSchema = z.strictObject({
  path: z.string().regex(BUNDLE_PATH).refine((p) => p !== MANIFEST_NAME, 'not the manifest itself'),
  kind: z.enum(ARTIFACT_KINDS),
  /** For people: "K3s v1.29.6+k3s2 binary", "chart sourcegraph 5.2.0", "image docker.io/library/nginx:1.25". */
  name: z.string().min(1),
  version: z.string().min(1),
  size: z.number().int().min(0),
  sha256: z.string().regex(SHA256),
  /** Where it was downloaded from (a URL, or docker://<registry>/<repository>@<digest>). */
  source: z.string().min(1),
  /** What the download was checked against, e.g. "sha256sum-amd64.txt", "index.yaml digest". */
  verifiedBy: z.string().min(1),
  chart: z.strictObject({ chart: z.string(), repository: z.string() }).optional(),
  /** The reference as the definition gives it, its normalized name and the linux/amd64 manifest digest. */
  image: z.strictObject({ reference: z.string(), name: z.string(), digest: z.string().regex(/^sha256:[a-f0-9]{64}$/) }).optional(),
});

export const manifestSchema = z.strictObject({
  format: z.literal(BUNDLE_FORMAT),
  kind: z.literal('kiln-bundle'),
  definition: z.strictObject({ name: z.string(), sha256: z.string().regex(SHA256) }),
  /** The product version the bundle was made for (charts without a pinned version follow it). */
  version: z.string(),
  artifacts: z.array(artifactSchema),
});

export type BundleArtifact = z.infer<typeof artifactSchema>;
export type BundleManifest = z.infer<typeof manifestSchema>;

export const bundlePaths = {
  k3s: (version: string, file: string) => `k3s/${version}/${file}`,
  helm: (version: string) => `helm/${helmArchive(version)}`,
  chart: (chart: string, version: string) => `charts/${chart}-${version}.tgz`,
  image: (reference: string) => `images/${imageFileName(parseImageRef(reference))}`,
};

export function helmArchive(version: string): string {
  return `helm-${version}-linux-amd64.tar.gz`;
}

/** Canonical JSON of a manifest: the bytes whose sha256 a plan pins. */
export function serializeManifest(manifest: BundleManifest): string {
  return `${JSON.stringify(manifest, null, 2)}\n`;
}
