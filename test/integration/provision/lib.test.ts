/**
 * provision/lib.sh's helpers, called one by one with bash on the test host. They are pure or write
 * only the temporary files the test names, so this needs no sandbox: semantic version order, the
 * Helm index lookup, durable and idempotent writes, the config reader that never executes, and
 * downloads against the artifact server (4xx fails at once, a cut download is retried).
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startArtifactServer, type ArtifactServer } from '../../support/artifact-server.js';

const LIB = path.resolve('provision/lib.sh');

/** Runs `source lib.sh; <fn> <args...>` in a clean bash; args are passed as data ("$@"). */
async function lib(fn: string, args: string[], env: Record<string, string> = {}) {
  return execa('bash', ['-c', `source "$KILN_TEST_LIB"; "$@"`, 'kiln-test', fn, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', KILN_TEST_LIB: LIB, KILN_SCRIPT: 'test', ...env },
    extendEnv: false,
    reject: false,
  });
}

describe('lib.sh', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-lib-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['5.10.0', '5.9.0', '1'],
    ['5.9.0', '5.10.0', '-1'],
    ['5.2.0', '5.2.0', '0'],
    ['10.0.0', '9.99.99', '1'],
    ['5.2.0-rc.1', '5.2.0', '-1'],
    ['5.2.0-rc.2', '5.2.0-rc.10', '-1'],
    ['5.2.0-alpha', '5.2.0-alpha.1', '-1'],
    ['5.2.0-alpha.beta', '5.2.0-alpha.1', '1'],
    ['5.2.0-beta', '5.2.0-alpha', '1'],
    ['1.0.0', '1.0.0-0', '1'],
    ['123456789012345678901.0.0', '123456789012345678900.0.0', '1'],
  ])('semver_cmp %s %s = %s', async (a, b, expected) => {
    const r = await lib('kiln_semver_cmp', [a, b]);
    expect(r.stdout).toBe(expected);
  });

  it('semver_cmp refuses what is not a version', async () => {
    for (const bad of ['5.2', 'v5.2.0', '05.2.0', '5.2.0;rm', '$(id)', '']) {
      const r = await lib('kiln_semver_cmp', [bad, '5.2.0']);
      expect(r.exitCode, bad).toBe(1);
      expect(r.stderr).toContain('not a semantic version');
    }
  });

  it('finds a chart version, its digest and URL in a Helm index (quoted, nested, other charts)', async () => {
    const index = path.join(dir, 'index.yaml');
    await writeFile(
      index,
      [
        'apiVersion: v1',
        'entries:',
        '  other:',
        '  - version: 5.2.0',
        '    digest: 1111111111111111111111111111111111111111111111111111111111111111',
        '    urls: [other-5.2.0.tgz]',
        '  sourcegraph:',
        '  - apiVersion: v2',
        '    dependencies:',
        '    - name: redis',
        '      version: 5.2.0',
        '    digest: "2222222222222222222222222222222222222222222222222222222222222222"',
        '    urls:',
        '    - https://example.com/sourcegraph-5.3.0.tgz',
        '    version: 5.3.0',
        '  - digest: 3333333333333333333333333333333333333333333333333333333333333333',
        '    urls:',
        '      - charts/sourcegraph-5.2.0.tgz',
        "    version: '5.2.0'",
        'generated: "2024-01-01T00:00:00Z"',
        '',
      ].join('\n'),
    );
    expect((await lib('kiln_index_lookup', [index, 'sourcegraph', '5.2.0'])).stdout).toBe(`${'3'.repeat(64)} charts/sourcegraph-5.2.0.tgz`);
    expect((await lib('kiln_index_lookup', [index, 'sourcegraph', '5.3.0'])).stdout).toBe(`${'2'.repeat(64)} https://example.com/sourcegraph-5.3.0.tgz`);
    expect((await lib('kiln_index_lookup', [index, 'other', '5.2.0'])).stdout).toBe(`${'1'.repeat(64)} other-5.2.0.tgz`);
    expect((await lib('kiln_index_lookup', [index, 'sourcegraph', '5.4.0'])).exitCode).toBe(1);
    expect((await lib('kiln_index_lookup', [index, 'redis', '5.2.0'])).exitCode).toBe(1);
  });

  it('reads KEY=VALUE config without executing anything in it', async () => {
    const conf = path.join(dir, 'boot.conf');
    const marker = path.join(dir, 'executed');
    await writeFile(conf, `# comment\nDATA_MOUNT=/mnt/data\nDATA_LABEL=$(touch ${marker})\nROOT=\`touch ${marker}\`\n`);
    const r = await execa('bash', ['-c', 'source "$1"; kiln_read_conf "$2" C_; printf "%s|%s|%s" "$C_DATA_MOUNT" "$C_DATA_LABEL" "$C_ROOT"', 'x', LIB, conf], { reject: false });
    expect(r.stdout).toBe(`/mnt/data|$(touch ${marker})|\`touch ${marker}\``);
    await expect(stat(marker)).rejects.toThrow();
    await writeFile(conf, 'lower=1\n');
    expect((await execa('bash', ['-c', 'source "$1"; kiln_read_conf "$2" C_', 'x', LIB, conf], { reject: false })).exitCode).toBe(1);
  });

  it('writes a file only when it differs, atomically, and keeps its mtime otherwise', async () => {
    const dest = path.join(dir, 'etc', 'file.conf');
    const write = (content: string, mode = '0644') =>
      execa('bash', ['-c', 'source "$1"; printf %s "$3" | kiln_write_file "$2" "$4"; echo "changed=$KILN_CHANGED"', 'x', LIB, dest, content, mode], { reject: false });
    expect((await write('a = 1\n')).stdout).toContain('changed=1');
    const before = await stat(dest);
    expect((await write('a = 1\n')).stdout).toContain('changed=0');
    expect((await stat(dest)).mtimeMs).toBe(before.mtimeMs);
    expect((await write('a = 1\n', '0600')).stdout).toContain('changed=1');
    expect(((await stat(dest)).mode & 0o777).toString(8)).toBe('600');
    expect((await write('a = 2\n', '0600')).stdout).toContain('changed=1');
    expect(await readFile(dest, 'utf8')).toBe('a = 2\n');
  });

  it('writes versions durably: whole value, mode, no temporary file left', async () => {
    const dest = path.join(dir, 'data', '.version');
    const r = await lib('kiln_write_durable', [dest, '5.10.0', '0600']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await readFile(dest, 'utf8')).toBe('5.10.0\n');
    expect(((await stat(dest)).mode & 0o777).toString(8)).toBe('600');
    const listing = await execa('ls', ['-A', path.dirname(dest)]);
    expect(listing.stdout).toBe('.version');
  });

  describe('downloads', () => {
    let server: ArtifactServer;
    beforeAll(async () => {
      await writeFile(path.join(dir, 'blob'), Buffer.alloc(200_000, 7));
      server = await startArtifactServer({ root: dir });
    });
    afterAll(async () => server?.close());

    it('downloads and verifies', async () => {
      const dest = path.join(dir, 'out');
      expect((await lib('kiln_download', [`${server.url}/blob`, dest])).exitCode).toBe(0);
      const sha = (await execa('sha256sum', [dest])).stdout.slice(0, 64);
      expect((await lib('kiln_verify_sha256', [dest, sha, 'blob'])).exitCode).toBe(0);
      const bad = await lib('kiln_verify_sha256', [dest, 'f'.repeat(64), 'the blob']);
      expect(bad.exitCode).toBe(1);
      expect(bad.stderr).toContain(`checksum mismatch for the blob: expected sha256 ${'f'.repeat(64)}, got ${sha}`);
    });

    it('fails at once on 404, retries a cut transfer', async () => {
      const started = Date.now();
      const missing = await lib('kiln_download', [`${server.url}/nothing`, path.join(dir, 'x')]);
      expect(missing.exitCode).toBe(1);
      expect(missing.stderr).toContain('failed: HTTP 404');
      expect(Date.now() - started).toBeLessThan(5000);

      server.setFault('/blob', { kind: 'cut', afterBytes: 5000, times: 1 });
      const cut = await lib('kiln_download', [`${server.url}/blob`, path.join(dir, 'cut')]);
      expect(cut.exitCode, cut.stderr).toBe(0);
      expect(cut.stderr).toContain('curl exit 18');
      expect((await stat(path.join(dir, 'cut'))).size).toBe(200_000);
      server.clearFaults();
    });

    it('refuses URLs that are not plain http(s)', async () => {
      for (const url of ['file:///etc/passwd', 'http://x/$(id)', 'ftp://host/x']) {
        const r = await lib('kiln_download', [url, path.join(dir, 'y')]);
        expect(r.exitCode, url).toBe(1);
        expect(r.stderr).toContain('not a plain http(s) URL');
      }
    });
  });
});
