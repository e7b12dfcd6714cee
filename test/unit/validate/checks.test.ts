import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { registriesConfig } from '../../../src/provision/steps.js';
import { loadDefinition } from '../../../src/definition/load.js';
import { plannedChecks } from '../../../src/validate/checks.js';
import { renderCheckTable } from '../../../src/validate/table.js';

const sourcegraph = await loadDefinition('images/sourcegraph.yaml');

describe('plannedChecks', () => {
  const checks = plannedChecks(sourcegraph.definition, '5.2.0');

  it('derives kiln\'s checks from the definition, then appends the definition\'s own', () => {
    const byName = new Map(checks.map((c) => [c.name, c]));
    expect(byName.get('root volume version')).toMatchObject({ env: { VERSION_FILE: '/etc/sourcegraph/version' }, expect: '5.2.0', source: 'kiln' });
    expect(byName.get('data volume version')).toMatchObject({ env: { DATA_MOUNT: '/mnt/data', VERSION_FILE: '.sourcegraph-version' }, expect: '5.2.0' });
    expect(byName.get('data volume mounted by label')?.expect).toBe('sgdata');
    expect(byName.get('/var/lib/kubelet on the data volume')).toMatchObject({ env: { LINK_PATH: '/var/lib/kubelet' }, expect: '/kubelet' });
    expect(byName.get('sysctl vm.max_map_count')).toMatchObject({ env: { SYSCTL_KEY: 'vm.max_map_count' }, expect: '262144' });
    expect(byName.get('firewall trusts the cluster and service CIDRs')?.env).toEqual({ CLUSTER_CIDR: '10.10.0.0/16', SERVICE_CIDR: '10.43.0.0/16' });
    const fromDefinition = checks.filter((c) => c.source === 'definition').map((c) => c.name);
    expect(fromDefinition).toEqual(['sourcegraph release deployed', 'executor release deployed']);
    expect(checks.slice(-2).map((c) => c.source)).toEqual(['definition', 'definition']);
  });

  it('never pastes a definition value into a command: values reach kiln\'s checks as environment variables', () => {
    for (const check of checks.filter((c) => c.source === 'kiln')) {
      for (const value of Object.values(check.env)) expect(check.command, check.name).not.toContain(value);
    }
    expect(checks.filter((c) => c.source === 'kiln').map((c) => c.command).join('\n')).not.toMatch(/sgdata|10\.10\.0\.0|\/mnt\/data|sourcegraph/);
  });

  it('checks registries.yaml (what kiln wrote, by sha256) and the CA when the definition names a registry mirror', () => {
    expect(checks.map((c) => c.name).filter((n) => n.includes('regist'))).toEqual([]);
    const k3s = { ...sourcegraph.definition.k3s, registryMirror: { endpoint: 'https://registry.internal:5000', caFile: 'ca.pem', registries: ['docker.io', 'quay.io'] } };
    const definition = { ...sourcegraph.definition, k3s };
    const mirrored = plannedChecks(definition, '5.2.0');
    const registries = mirrored.find((c) => c.name === 'registries.yaml mirrors docker.io, quay.io to the internal registry');
    expect(registries).toMatchObject({ command: 'sha256sum < /etc/rancher/k3s/registries.yaml | cut -c1-64', source: 'kiln' });
    expect(registries?.expect).toBe(createHash('sha256').update(registriesConfig(definition) ?? '').digest('hex'));
    expect(registriesConfig(definition)).toContain('ca_file: /etc/rancher/k3s/registry-ca.pem');
    expect(mirrored.map((c) => c.name)).toContain('registry mirror CA installed');
  });

  it('leaves the firewall check out when the definition disables the firewall', () => {
    const definition = { ...sourcegraph.definition, host: { ...sourcegraph.definition.host, firewall: { enabled: false, allow: [] } } };
    expect(plannedChecks(definition, '5.2.0').map((c) => c.name)).not.toContain('firewall trusts the cluster and service CIDRs');
  });
});

describe('renderCheckTable', () => {
  it('shows what each failing check expected and got, and counts the failures', () => {
    const table = renderCheckTable([
      { name: 'k3s is running', source: 'kiln', passed: true, expected: 'active', actual: 'active', exitCode: 0 },
      { name: 'boot unit succeeded', source: 'kiln', passed: false, expected: 'active', actual: 'failed', exitCode: 3 },
      { name: 'no shell history from the build', source: 'kiln', passed: false, actual: '/root/.bash_history', exitCode: 1 },
    ]);
    expect(table.split('\n')).toEqual([
      'result  check                            output',
      'pass    k3s is running                   active',
      'FAIL    boot unit succeeded              expected "active", got failed, exit 3',
      'FAIL    no shell history from the build  /root/.bash_history, exit 1',
      '2 of 3 checks failed',
    ]);
  });
});
