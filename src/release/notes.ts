/**
 * Release notes from a run manifest: Markdown that customers copy image ids from. Per target a table
 * with one row per size and region (AWS AMIs; Azure managed images and gallery versions; GCE images
 * and their self links; local files with sha256), the K3s, Helm and chart versions, and the builds
 * that did not succeed called out on their own. The output depends on the manifest alone (no clock,
 * no environment), so rendering twice gives the same text and CHANGELOG updates are idempotent.
 *
 * Artifacts are recognised by target and kind (docs/manifest.md lists the kinds); any other artifact
 * is listed under "Other artifacts" rather than dropped.
 */
import type { SizeName, TargetName } from '../definition/schema.js';
import type { Manifest, ManifestBuild } from '../pipeline/manifest.js';
import type { Artifact } from '../targets/target.js';
import { updateChangelogFile, type ChangelogAction } from './changelog.js';
import { readManifest } from './manifest-schema.js';
import { compareBuilds } from './merge.js';

export interface NotesOptions {
  /** Words after the version in the heading: `## 5.2.0 - <title>`. */
  title?: string;
}

export interface ReleaseNotesRequest extends NotesOptions {
  manifest: string;
  /** CHANGELOG.md to put the notes into (replacing that version's section). */
  changelog?: string;
}

export interface ReleaseNotesResult {
  notes: string;
  version: string;
  changelog?: { path: string; action: ChangelogAction };
}

/** Reads a manifest, renders its notes and, if asked, puts them into the changelog. */
export async function releaseNotes(request: ReleaseNotesRequest): Promise<ReleaseNotesResult> {
  const manifest = await readManifest(request.manifest);
  const notes = renderNotes(manifest, { title: request.title });
  if (!request.changelog) return { notes, version: manifest.version };
  const action = await updateChangelogFile(request.changelog, manifest.version, notes);
  return { notes, version: manifest.version, changelog: { path: request.changelog, action } };
}

const TARGET_TITLES: Record<TargetName, string> = { aws: 'AWS', azure: 'Azure', gcp: 'Google Compute Engine', local: 'Local (QEMU)' };
/** In lists and tables, where the long titles would crowd the line. */
const TARGET_LABELS: Record<TargetName, string> = { aws: 'AWS', azure: 'Azure', gcp: 'GCE', local: 'local' };

type ArtifactRole = 'ami' | 'managed-image' | 'gallery-version' | 'gce-image' | 'file' | 'other';

/** The kinds each target's driver reports (docs/manifest.md). */
function roleOf(target: TargetName, artifact: Artifact): ArtifactRole {
  const kind = artifact.kind;
  if (target === 'aws' && kind === 'ami') return 'ami';
  if (target === 'azure' && kind === 'azure-managed-image') return 'managed-image';
  if (target === 'azure' && kind === 'azure-gallery-image-version') return 'gallery-version';
  if (target === 'gcp' && kind === 'image') return 'gce-image';
  if (target === 'local' && kind === 'image-file') return 'file';
  return 'other';
}

interface Placed {
  build: ManifestBuild;
  artifact: Artifact;
  role: ArtifactRole;
}

export function renderNotes(manifest: Manifest, options: NotesOptions = {}): string {
  const builds = [...manifest.builds].sort(compareBuilds);
  const succeeded = builds.filter((b) => b.status === 'succeeded');
  const unsuccessful = builds.filter((b) => b.status !== 'succeeded');
  const placed: Placed[] = succeeded.flatMap((build) => build.artifacts.map((artifact) => ({ build, artifact, role: roleOf(build.target, artifact) })));
  const out: string[] = [];

  out.push(`## ${manifest.version}${options.title ? ` - ${oneLine(options.title)}` : ''}`, '');
  out.push(
    `${manifest.definition.name} ${manifest.version}, built by kiln run \`${manifest.runId}\` on ${manifest.startedAt.slice(0, 10)} from ` +
      `\`${manifest.definition.path}\` (sha256 \`${manifest.definition.sha256.slice(0, 12)}\`): ${succeeded.length} of ${builds.length} builds succeeded.`,
    '',
  );
  if (unsuccessful.length > 0) {
    const list = unsuccessful.map((b) => `${TARGET_LABELS[b.target]} ${b.size}`).join(', ');
    out.push(`> **${unsuccessful.length} build${unsuccessful.length === 1 ? '' : 's'} did not succeed** and ${unsuccessful.length === 1 ? 'has' : 'have'} no images in this release: ${list}. See "Failed builds" below.`, '');
  }
  out.push(...software(succeeded.length > 0 ? succeeded : builds));
  out.push(...awsSection(placed.filter((p) => p.role === 'ami')));
  out.push(...azureSection(placed.filter((p) => p.role === 'managed-image' || p.role === 'gallery-version')));
  out.push(...gceSection(placed.filter((p) => p.role === 'gce-image')));
  out.push(...localSection(placed.filter((p) => p.role === 'file')));
  out.push(...otherSection(placed.filter((p) => p.role === 'other')));
  if (placed.length === 0) out.push('No images were produced.', '');
  out.push(...failedSection(unsuccessful));
  while (out.at(-1) === '') out.pop();
  return `${out.join('\n')}\n`;
}

function software(builds: ManifestBuild[]): string[] {
  const rows: string[][] = [];
  const add = (component: string, valueOf: (b: ManifestBuild) => string | undefined) => {
    const byValue = new Map<string, ManifestBuild[]>();
    for (const build of builds) {
      const value = valueOf(build);
      if (value !== undefined) byValue.set(value, [...(byValue.get(value) ?? []), build]);
    }
    if (byValue.size === 0) return;
    const cell = byValue.size === 1 ? code([...byValue.keys()][0] ?? '') : [...byValue].map(([value, bs]) => `${code(value)} (${bs.map((b) => `${TARGET_LABELS[b.target]} ${b.size}`).join(', ')})`).join('; ');
    rows.push([component, cell]);
  };
  add('K3s', (b) => b.k3sVersion);
  add('Helm', (b) => b.helmVersion);
  const charts = new Map<string, string>();
  for (const build of builds) for (const c of build.charts) charts.set(c.release, c.release === c.chart ? `chart ${c.chart}` : `chart ${c.chart} (release ${c.release})`);
  for (const [release, label] of charts) add(label, (b) => b.charts.find((c) => c.release === release)?.version);
  return ['### Software', '', ...table(['component', 'version'], rows)];
}

function awsSection(items: Placed[]): string[] {
  if (items.length === 0) return [];
  const rows = sortPlaced(items).map(({ build, artifact }) => [build.size, artifact.region ?? '', code(artifact.id), artifact.disk && artifact.disk !== 'both' ? artifact.disk : '']);
  const showDisk = rows.some((r) => r[3] !== '');
  return [
    `### ${TARGET_TITLES.aws}`,
    '',
    'One AMI per size and region; each holds the root and the data volume.',
    '',
    ...table(['size', 'region', 'AMI', ...(showDisk ? ['disk'] : [])], rows.map((r) => (showDisk ? r : r.slice(0, 3)))),
  ];
}

function azureSection(items: Placed[]): string[] {
  if (items.length === 0) return [];
  const rows = new Map<string, { size: SizeName; region: string; managed: string[]; gallery: string[] }>();
  for (const { build, artifact, role } of sortPlaced(items)) {
    const region = artifact.region ?? '';
    const key = `${build.buildId}\u0000${region}`;
    const row = rows.get(key) ?? { size: build.size, region, managed: [], gallery: [] };
    (role === 'managed-image' ? row.managed : row.gallery).push(code(artifact.id));
    rows.set(key, row);
  }
  return [
    `### ${TARGET_TITLES.azure}`,
    '',
    'Per size and region: the managed image (in the build location) and the Compute Gallery image version replicated there.',
    '',
    ...table(['size', 'region', 'managed image', 'gallery image version'], [...rows.values()].map((r) => [r.size, r.region, r.managed.join('<br>'), r.gallery.join('<br>')])),
  ];
}

function gceSection(items: Placed[]): string[] {
  if (items.length === 0) return [];
  const sorted = sortPlaced(items);
  const showLocation = sorted.some((p) => p.artifact.region);
  const rows = sorted.map(({ build, artifact }) => [build.size, artifact.disk ?? '', ...(showLocation ? [artifact.region ?? ''] : []), code(artifact.name ?? ''), code(artifact.id)]);
  return [
    `### ${TARGET_TITLES.gcp}`,
    '',
    'One image per size and disk (root and data); images are global.',
    '',
    ...table(['size', 'disk', ...(showLocation ? ['storage location'] : []), 'image', 'self link'], rows),
  ];
}

function localSection(items: Placed[]): string[] {
  if (items.length === 0) return [];
  const rows = sortPlaced(items).map(({ build, artifact }) => [
    build.size,
    artifact.disk ?? '',
    artifact.format ?? '',
    code(basename(artifact.path ?? artifact.id)),
    artifact.sizeBytes === undefined ? '' : formatBytes(artifact.sizeBytes),
    artifact.sha256 ? code(artifact.sha256) : '',
  ]);
  return [`### ${TARGET_TITLES.local}`, '', 'Disk image files, one per size, disk and format.', '', ...table(['size', 'disk', 'format', 'file', 'file size', 'sha256'], rows)];
}

function otherSection(items: Placed[]): string[] {
  if (items.length === 0) return [];
  const rows = sortPlaced(items).map(({ build, artifact }) => [TARGET_LABELS[build.target], build.size, artifact.kind, artifact.region ?? '', artifact.name ?? '', code(artifact.id)]);
  return ['### Other artifacts', '', ...table(['target', 'size', 'kind', 'region', 'name', 'id'], rows)];
}

function failedSection(builds: ManifestBuild[]): string[] {
  if (builds.length === 0) return [];
  const rows = builds.map((b) => [
    TARGET_LABELS[b.target],
    b.size,
    b.status === 'running' || b.status === 'pending' ? `${b.status} (did not finish)` : b.status,
    b.error?.step ?? '',
    b.error ? `${b.error.code}: ${truncate(oneLine(b.error.message), 200)}` : '',
  ]);
  return ['### Failed builds', '', 'These builds produced no images for this release.', '', ...table(['target', 'size', 'status', 'step', 'error'], rows)];
}

/** Size XS..XL, then region, then disk, then id: the order a reader scans a table in. */
function sortPlaced(items: Placed[]): Placed[] {
  const disks = ['both', 'root', 'data'];
  return [...items].sort(
    (a, b) =>
      compareBuilds(a.build, b.build) ||
      (a.artifact.region ?? '').localeCompare(b.artifact.region ?? '') ||
      disks.indexOf(a.artifact.disk ?? 'both') - disks.indexOf(b.artifact.disk ?? 'both') ||
      (a.artifact.format ?? '').localeCompare(b.artifact.format ?? '') ||
      a.artifact.id.localeCompare(b.artifact.id),
  );
}

function table(header: string[], rows: string[][]): string[] {
  const line = (cells: string[]) => `| ${cells.map(escapeCell).join(' | ')} |`;
  return [line(header), `|${header.map(() => '---').join('|')}|`, ...rows.map(line), ''];
}

function escapeCell(value: string): string {
  return oneLine(value).replace(/\|/g, '\\|');
}

function oneLine(value: string): string {
  return value.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

function code(value: string): string {
  if (value === '') return '';
  return value.includes('`') ? `\`\` ${value} \`\`` : `\`${value}\``;
}

function truncate(value: string, max: number): string {
  return value.length <= max ? value : `${value.slice(0, max - 3)}...`;
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}
