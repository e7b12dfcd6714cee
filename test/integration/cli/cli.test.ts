import { describe, expect, it } from 'vitest';
import { execa } from 'execa';

/** Runs the real CLI as a user would, without a TTY. */
async function kiln(...args: string[]) {
  return execa('node', ['bin/kiln.js', ...args], { reject: false, env: { CI: 'true' } });
}

describe('kiln CLI', () => {
  it('prints the plan of the issue as JSON', async () => {
    const result = await kiln('plan', 'images/sourcegraph.yaml', '--target', 'aws', '--size', 'xs', '--version', '5.2.0', '--json');
    expect(result.exitCode).toBe(0);
    const plan = JSON.parse(result.stdout);
    expect(plan.targetPlan.instanceType).toBe('m6a.2xlarge');
    expect(plan.disks.root.sizeGb).toBe(50);
    expect(plan.disks.data.sizeGb).toBe(500);
    expect(plan.runId).toMatch(/^r[a-z0-9]+$/);
  });

  it('prints a readable plan with plain lines when not on a TTY', async () => {
    const result = await kiln('plan', 'images/gitea.yaml', '-t', 'local', '-s', 's', '-V', '1.22.0', '--run-id', 'rcli00001');
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('Plan rcli00001-local-s: gitea 1.22.0, size S, target local');
    expect(result.stdout).not.toContain('\u001b[');
  });

  it('exits 2 with the field and value on bad input', async () => {
    const result = await kiln('plan', 'images/sourcegraph.yaml', '-t', 'aws', '-s', 'xs', '-V', '5.0.0; rm -rf /');
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('--version: expected a semantic version like 5.2.0 or 5.2.0-rc.1, found "5.0.0; rm -rf /"');
    expect(result.stderr).not.toContain('    at ');
  });

  it('exits 2 on a missing option and on an unknown command', async () => {
    expect((await kiln('plan', 'images/sourcegraph.yaml')).exitCode).toBe(2);
    expect((await kiln('bake')).exitCode).toBe(2);
  });

  it('checks every definition under images/ by default', async () => {
    const result = await kiln('check');
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('ok      images/sourcegraph.yaml');
    expect(result.stdout).toContain('ok      images/gitea.yaml');
  });

  it('exits 2 on an invalid definition, naming file and line', async () => {
    const result = await kiln('check', 'test/unit/definition/fixtures/missing-values.yaml');
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/missing-values\.yaml:9:\d+: sizes\.S\.values\.web\[0\]: file not found/);
  });

  it('shows help', async () => {
    const result = await kiln('--help');
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('plan [options] <definition>');
  });
});
