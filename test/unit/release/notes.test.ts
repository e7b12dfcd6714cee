import { describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/pipeline/manifest.js';
import { formatBytes, releaseNotes, renderNotes } from '../../../src/release/notes.js';
import { expectGolden } from '../../support/golden.js';
import { FIXTURE, GOLDEN, fixture } from './fixture.js';

/** The fixture with the things real runs also produce: mixed versions, odd kinds, unfinished builds. */
function edgeCases(): Manifest {
  const m = fixture();
  const gcpS = m.builds.find((b) => b.buildId.endsWith('-gcp-s'))!;
  gcpS.k3sVersion = 'v1.29.7+k3s1';
  gcpS.charts = gcpS.charts.map((c) => (c.release === 'sourcegraph' ? { ...c, version: '5.2.0-hotfix.1' } : c));
  const awsXs = m.builds.find((b) => b.buildId.endsWith('-aws-xs'))!;
  awsXs.artifacts.push({ kind: 'snapshot', id: 'snap-0123456789abcdef0', region: 'us-west-2', name: 'data | volume' });
  const local = m.builds.find((b) => b.target === 'local')!;
  local.status = 'running';
  const awsM = m.builds.find((b) => b.buildId.endsWith('-aws-m'))!;
  Object.assign(awsM, { status: 'interrupted', error: { code: 'INTERRUPTED', message: 'interrupted by SIGTERM\nwhile copying | to eu-west-1', step: 'publish' } });
  return m;
}

describe('kiln release notes', () => {
  it('renders the realistic manifest (golden)', async () => {
    const { notes } = await releaseNotes({ manifest: FIXTURE });
    expectGolden(`${GOLDEN}/sourcegraph-5.2.0.md`, notes);
  });

  it('renders mixed versions, unknown artifact kinds and unfinished builds (golden)', () => {
    expectGolden(`${GOLDEN}/edge-cases.md`, renderNotes(edgeCases(), { title: 'Sourcegraph | appliance images' }));
  });

  it('lists every AMI, gallery version, GCE image and file of the succeeded builds, and no artifact of a failed one', () => {
    const m = fixture();
    const notes = renderNotes(m);
    for (const build of m.builds.filter((b) => b.status === 'succeeded')) {
      for (const artifact of build.artifacts) expect(notes, artifact.id).toContain(artifact.kind === 'image-file' ? artifact.sha256! : artifact.id);
    }
    const failed = m.builds.find((b) => b.status === 'failed')!;
    failed.artifacts = [{ kind: 'azure-managed-image', id: '/subscriptions/x/images/half-published', region: 'eastus' }];
    expect(renderNotes(m)).not.toContain('half-published');
  });

  it('has one AWS row per size and region, sizes in order XS..XL', () => {
    const rows = renderNotes(fixture()).split('\n').filter((l) => /^\| (XS|S|M|L|XL) \| [a-z]+-[a-z]+-\d \| `ami-/.test(l));
    expect(rows.map((r) => r.split(' | ').slice(0, 2).join(' ').slice(2))).toEqual(
      ['XS', 'S', 'M'].flatMap((size) => ['eu-west-1', 'us-east-1', 'us-west-2'].map((region) => `${size} ${region}`)),
    );
  });

  it('calls failed builds out at the top and lists them at the end', () => {
    const notes = renderNotes(fixture());
    expect(notes).toMatch(/^> \*\*1 build did not succeed\*\* and has no images in this release: Azure S\./m);
    expect(notes).toMatch(/### Failed builds\n\nThese builds produced no images for this release\.\n\n\| target \| size \| status \| step \| error \|\n\|---\|---\|---\|---\|---\|\n\| Azure \| S \| failed \| publish \| CLOUD: Gallery image version replication/);
    expect(renderNotes({ ...fixture(), builds: fixture().builds.filter((b) => b.status === 'succeeded') })).not.toMatch(/did not succeed|Failed builds/);
  });

  it('is the same text every time, whatever order the builds and artifacts come in', () => {
    const m = fixture();
    const shuffled = { ...m, builds: [...m.builds].reverse().map((b) => ({ ...b, artifacts: [...b.artifacts].reverse() })) };
    expect(renderNotes(shuffled)).toBe(renderNotes(m));
  });

  it('says so when a run produced no images', () => {
    const m = fixture();
    for (const b of m.builds) Object.assign(b, { status: 'failed', artifacts: [], error: { code: 'CLOUD', message: 'quota' } });
    const notes = renderNotes(m);
    expect(notes).toContain('No images were produced.');
    expect(notes).toContain('0 of 8 builds succeeded');
  });

  it('formats file sizes', () => {
    expect([0, 1023, 1024, 276824064, 3489660928, 5 * 1024 ** 4].map(formatBytes)).toEqual(['0 B', '1023 B', '1.0 KiB', '264.0 MiB', '3.3 GiB', '5.0 TiB']);
  });
});
