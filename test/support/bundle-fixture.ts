/**
 * A definition for the air-gapped tests: images/gitea.yaml with an internal registry mirror (its
 * CA certificate beside the definition), the chart's container images on that registry, and an
 * ext4 data volume (small enough for the sandbox's disk), written into a directory with its values
 * files.
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';

export const AIRGAP_VERSION = '1.22.0';

export async function airgapDefinition(dir: string, registry: { url: string; caFile: string }, images: string[]): Promise<string> {
  const definition = parse(await readFile('images/gitea.yaml', 'utf8')) as {
    k3s: Record<string, unknown>;
    charts: { images: string[] }[];
    dataVolume: { filesystem: string };
  };
  definition.k3s.registryMirror = { endpoint: registry.url, caFile: 'registry-ca.pem' };
  definition.charts[0] = { ...definition.charts[0], images };
  definition.dataVolume.filesystem = 'ext4';
  await mkdir(path.join(dir, 'values', 'gitea'), { recursive: true });
  await copyFile('images/values/gitea/small.yaml', path.join(dir, 'values', 'gitea', 'small.yaml'));
  await copyFile(registry.caFile, path.join(dir, 'registry-ca.pem'));
  const file = path.join(dir, 'airgap.yaml');
  await writeFile(file, stringify(definition));
  return file;
}
