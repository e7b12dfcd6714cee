/**
 * Static checks of every shell script kiln ships or tests with: shellcheck clean (with -x, so the
 * sourced lib.sh is checked in context), bash syntax, and the conventions of provision/: a header
 * saying what the script changes on the host, strict mode through lib.sh, and no eval or `sh -c`
 * that a value could reach.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

const provision = 'provision';
const steps = ['base', 'bundle', 'data-volume', 'kernel', 'firewall', 'k3s', 'helm', 'charts', 'version', 'generalize'];

async function shellFiles(): Promise<string[]> {
  const own = (await readdir(provision)).filter((f) => f.endsWith('.sh')).map((f) => path.join(provision, f));
  const boot = (await readdir(path.join(provision, 'boot'))).filter((f) => f.endsWith('.sh')).map((f) => path.join(provision, 'boot', f));
  const support = [
    'test/support/standins/k3s',
    'test/support/standins/helm',
    'test/support/azure-cli/az',
    'test/support/sandbox/enter.sh',
    ...(await readdir('test/support/sandbox/bin')).map((f) => path.join('test/support/sandbox/bin', f)),
  ];
  return [...own, ...boot, ...support];
}

/** The script without its comment lines. */
const code = (text: string) =>
  text
    .split('\n')
    .filter((l) => !l.trim().startsWith('#'))
    .join('\n');

describe('shell scripts', () => {
  it('has one script per step of the plan, plus lib.sh and the boot script and unit', async () => {
    const files = await readdir(provision);
    for (const id of steps) expect(files).toContain(`${id}.sh`);
    expect(files).toContain('lib.sh');
    expect(await readdir(path.join(provision, 'boot'))).toEqual(['kiln-boot.service', 'kiln-boot.sh']);
  });

  it('passes shellcheck -x', async () => {
    const files = await shellFiles();
    const result = await execa('shellcheck', ['-x', '--severity=info', '-f', 'gcc', ...files], { reject: false });
    expect(result.stdout, result.stdout).toBe('');
    expect(result.exitCode).toBe(0);
  });

  it('parses with bash -n', async () => {
    for (const file of await shellFiles()) {
      const result = await execa('bash', ['-n', file], { reject: false });
      expect(result.stderr, file).toBe('');
    }
  });

  it.each(steps)('%s.sh says what it changes, runs strict through lib.sh and never evaluates values', async (id) => {
    const text = await readFile(path.join(provision, `${id}.sh`), 'utf8');
    expect(text.startsWith('#!/usr/bin/env bash\n')).toBe(true);
    expect(text).toMatch(/^# Changes on the host/m);
    expect(text).toMatch(/^# Environment: /m);
    expect(text).toMatch(/^source "\$\(dirname -- "\$\{BASH_SOURCE\[0\]\}"\)\/lib\.sh"$/m);
    expect(code(text)).not.toMatch(/\beval\b|\b(ba)?sh -c\b|\bsource\s+"?\$[A-Z]/);
  });

  it('lib.sh and the boot script set strict mode and never evaluate values', async () => {
    const lib = await readFile(path.join(provision, 'lib.sh'), 'utf8');
    expect(lib).toMatch(/^set -euo pipefail$/m);
    const boot = await readFile(path.join(provision, 'boot', 'kiln-boot.sh'), 'utf8');
    for (const text of [lib, boot]) expect(code(text)).not.toMatch(/\beval\b|\b(ba)?sh -c\b/);
  });

  it('the boot unit runs the installed boot script once per boot and stays active', async () => {
    const unit = await readFile(path.join(provision, 'boot', 'kiln-boot.service'), 'utf8');
    expect(unit).toContain('ExecStart=/usr/local/lib/kiln/kiln-boot.sh');
    expect(unit).toContain('Type=oneshot');
    expect(unit).toContain('RemainAfterExit=yes');
    expect(unit).toContain('WantedBy=multi-user.target');
    expect(unit).toMatch(/^After=.*local-fs\.target/m);
  });
});
