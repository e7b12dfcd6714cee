import { describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../../src/core/errors.js';
import { loadDefinition, parseDefinition } from '../../../src/definition/load.js';

const sourcegraph = readFileSync('images/sourcegraph.yaml', 'utf8');

/** The flagship definition with one line replaced, to provoke one error at a known place. */
function variant(find: string, replace: string): string {
  expect(sourcegraph).toContain(find);
  return sourcegraph.replace(find, replace);
}

function errorsOf(text: string, file = 'images/test.yaml'): string[] {
  try {
    parseDefinition(text, file);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return (err as InputError).message.split('\n');
  }
  throw new Error('expected the definition to be rejected');
}

function lineOf(text: string, needle: string): number {
  return text.split('\n').findIndex((l) => l.includes(needle)) + 1;
}

describe('loading definitions', () => {
  it('accepts every definition shipped in images/', async () => {
    for (const file of ['images/sourcegraph.yaml', 'images/gitea.yaml']) {
      const loaded = await loadDefinition(file);
      expect(loaded.definition.name).toMatch(/^[a-z]/);
      expect(loaded.sha256).toMatch(/^[a-f0-9]{64}$/);
    }
  });

  it('fills defaults', () => {
    const def = parseDefinition(sourcegraph, 'images/sourcegraph.yaml');
    expect(def.charts[0]?.namespace).toBe('default');
    expect(def.targets.local?.accelerator).toBe('auto');
    expect(def.sources.helm).toBe('https://get.helm.sh');
    expect(def.sizes.L?.aws?.dataVolume).toEqual({ type: 'io2', iops: 16000 });
  });

  it('reports an unknown key with its line, column and path', () => {
    const text = variant('  nodeName: sourcegraph-0', '  nodeName: sourcegraph-0\n  nodeNmae: typo');
    const line = lineOf(text, 'nodeNmae');
    expect(errorsOf(text)).toEqual([`images/test.yaml:${line}:3: k3s.nodeNmae: unknown key "nodeNmae" (check its spelling; see images/schema.json)`]);
  });

  it('reports a dangerous chart name with what was expected and found', () => {
    const text = variant('chart: sourcegraph-executor-k8s', 'chart: "$(reboot)"');
    const line = lineOf(text, '$(reboot)');
    expect(errorsOf(text)).toEqual([
      `images/test.yaml:${line}:12: charts[1].chart: expected chart name: lowercase letters, digits and "-", starting and ending with a letter or digit, at most 63 characters, found "$(reboot)"`,
    ]);
  });

  it('reports a wrong type and an enum value', () => {
    const text = variant('  rootGb: 50', '  rootGb: fifty').replace('filesystem: ext4', 'filesystem: ntfs');
    expect(errorsOf(text)).toEqual([
      `images/test.yaml:${lineOf(text, 'rootGb: fifty')}:11: disks.rootGb: expected number, found "fifty"`,
      `images/test.yaml:${lineOf(text, 'ntfs')}:15: dataVolume.filesystem: expected one of "ext4", "xfs", found "ntfs"`,
    ]);
  });

  it('reports a missing required field at its parent', () => {
    const text = variant('  version: v3.14.4\n', '  sha256: ' + 'a'.repeat(64) + '\n');
    expect(errorsOf(text)).toEqual([`images/test.yaml:${lineOf(text, 'sha256:')}:3: helm.version: required: expected string, found nothing`]);
  });

  it('quotes sysctl keys in paths', () => {
    const text = variant('vm.max_map_count: 262144', 'vm.max_map_count: "262144; reboot"');
    expect(errorsOf(text)[0]).toMatch(/host\.sysctls\["vm\.max_map_count"\]: expected .*found "262144; reboot"$/);
  });

  it('checks rules across fields', () => {
    const text = variant('serviceCidr: 10.43.0.0/16', 'serviceCidr: 10.10.128.0/17');
    expect(errorsOf(text)).toEqual([
      `images/test.yaml:${lineOf(text, 'serviceCidr')}:16: k3s.serviceCidr: overlaps clusterCidr 10.10.0.0/16; pods and services need disjoint networks`,
    ]);
    const values = variant('sourcegraph: [values/sourcegraph/xs.yaml]', 'sourcegrph: [values/sourcegraph/xs.yaml]');
    expect(errorsOf(values)[0]).toContain('sizes.XS.values.sourcegrph: no chart named "sourcegrph" (charts: sourcegraph, sourcegraph-executor-k8s)');
  });

  it('refuses public AMIs with encrypted snapshots, which EC2 rejects', () => {
    const text = variant('    encrypted: false', '    encrypted: true');
    expect(errorsOf(text)).toEqual([
      `images/test.yaml:${lineOf(text, 'launchPermissions: { public: true }')}:34: publish.aws.launchPermissions.public: EC2 cannot make an AMI with encrypted snapshots public: set targets.aws.encrypted to false, or share with accounts instead`,
    ]);
  });

  it('refuses a CIDR with host bits set', () => {
    const text = variant('clusterCidr: 10.10.0.0/16', 'clusterCidr: 10.10.1.0/16');
    expect(errorsOf(text)[0]).toContain('k3s.clusterCidr: expected an IPv4 network in CIDR form like 10.10.0.0/16 (host bits zero), found "10.10.1.0/16"');
  });

  it('reports YAML syntax errors with their position', () => {
    expect(errorsOf('name: x\nsizes: [\n', 'bad.yaml')[0]).toMatch(/^bad\.yaml:\d+:\d+: YAML: /);
  });

  it('refuses a file that is not a mapping', () => {
    expect(errorsOf('- a\n- b\n', 'list.yaml')).toEqual(['list.yaml:1:1: expected a mapping at the top of the definition']);
  });

  it('reports a missing values file with its field', async () => {
    await expect(loadDefinition('test/unit/definition/fixtures/missing-values.yaml')).rejects.toThrow(
      /missing-values\.yaml:\d+:\d+: sizes\.S\.values\.web\[0\]: file not found: test\/unit\/definition\/fixtures\/values\/nope\.yaml/,
    );
  });

  it('refuses a registry mirror CA file that holds no certificate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-ca-'));
    try {
      const mirror = 'k3s:\n  registryMirror:\n    endpoint: https://registry.internal:5000\n    caFile: ca.pem\n';
      cpSync('images/values', join(dir, 'values'), { recursive: true });
      writeFileSync(join(dir, 'def.yaml'), variant('k3s:\n', mirror));
      writeFileSync(join(dir, 'ca.pem'), 'not a certificate\n');
      await expect(loadDefinition(join(dir, 'def.yaml'))).rejects.toThrow(/def\.yaml:\d+:\d+: k3s\.registryMirror\.caFile: expected a PEM certificate \(-----BEGIN CERTIFICATE-----\) in .*ca\.pem, found no certificate/);
      writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
      await expect(loadDefinition(join(dir, 'def.yaml'))).rejects.toThrow(/found a certificate that does not parse/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a missing file', async () => {
    await expect(loadDefinition('images/nope.yaml')).rejects.toThrow('images/nope.yaml: cannot read definition: no such file');
  });
});
