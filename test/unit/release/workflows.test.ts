/**
 * The GitHub Actions workflows cannot run here: this checks that their YAML parses, that they have
 * the shape the release flow needs (triggers, OIDC, cleanup on failure, shards, merge, notes, pull
 * request), and that every `./bin/kiln.js` command they call exists with every flag they pass
 * (`--help` of that command lists it).
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { helpOf, registerFunctions } from './kiln-cli.js';

const NIGHTLY = '.github/workflows/nightly.yml';
const RELEASE = '.github/workflows/release.yml';


interface Step {
  name?: string;
  if?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, unknown>;
  'timeout-minutes'?: number;
}
interface Job {
  needs?: string | string[];
  if?: string;
  permissions?: Record<string, string>;
  strategy?: { 'fail-fast'?: boolean; matrix: Record<string, unknown> };
  env?: Record<string, unknown>;
  steps: Step[];
  'timeout-minutes'?: number;
}
interface Workflow {
  name: string;
  on: Record<string, unknown>;
  env?: Record<string, unknown>;
  jobs: Record<string, Job>;
}

function load(path: string): { text: string; workflow: Workflow } {
  const text = readFileSync(path, 'utf8');
  return { text, workflow: parse(text, { uniqueKeys: true, strict: true }) as Workflow };
}

const steps = (w: Workflow) => Object.values(w.jobs).flatMap((j) => j.steps);
const runs = (w: Workflow) => steps(w).flatMap((s) => (s.run ? [s.run] : []));
const stepRunning = (job: Job, pattern: RegExp) => job.steps.find((s) => s.run && pattern.test(s.run));

/** Shell words, keeping quoted strings and $(...) whole. */
function words(line: string): string[] {
  const out: string[] = [];
  let current = '';
  let quote: string | undefined;
  let depth = 0;
  for (const ch of line) {
    if (quote) {
      current += ch;
      if (ch === quote) quote = undefined;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      current += ch;
    } else if (/\s/.test(ch) && depth === 0) {
      if (current) out.push(current);
      current = '';
    } else {
      if (ch === '(') depth++;
      if (ch === ')') depth--;
      current += ch;
    }
  }
  if (current) out.push(current);
  return out;
}

/** Every `./bin/kiln.js ...` in the scripts: its words up to the first shell operator. */
export function kilnCalls(scripts: string[]): string[][] {
  const calls: string[][] = [];
  for (const script of scripts) {
    for (const line of script.replace(/\\\n\s*/g, ' ').split('\n')) {
      const tokens = words(line);
      tokens.forEach((token, i) => {
        if (token !== './bin/kiln.js') return;
        const rest = tokens.slice(i + 1);
        const end = rest.findIndex((t) => /^(\||\|\||&&|;|[0-9]?>|>>|<)/.test(t));
        calls.push(end < 0 ? rest : rest.slice(0, end));
      });
    }
  }
  return calls;
}

/** The command a call names (`build`, `manifest merge`) and the flags it passes. */
async function resolveCall(call: string[]): Promise<{ path: string[]; flags: string[]; helpText?: string }> {
  const [first = '', second] = call;
  let path = [first];
  let helpText = await helpOf(path);
  const subcommands = helpText?.split(/^Commands:/m)[1];
  if (second && subcommands && new RegExp(`^\\s+${second}\\b`, 'm').test(subcommands)) {
    path = [first, second];
    helpText = await helpOf(path);
  }
  const flags = call.filter((t) => /^--?[A-Za-z]/.test(t)).map((t) => t.split('=')[0]!);
  return { path, flags, helpText };
}

describe('GitHub Actions workflows', () => {
  beforeAll(() => registerFunctions(), 120_000);

  it('parse as YAML, with no ${{ }} expressions pasted into shell scripts (inputs reach scripts through env)', () => {
    for (const path of [NIGHTLY, RELEASE]) {
      const { workflow } = load(path);
      expect(workflow.jobs, path).toBeTypeOf('object');
      for (const script of runs(workflow)) expect(script, path).not.toMatch(/\$\{\{/);
    }
  });

  it('nightly: schedule and manual runs, OIDC per cloud, build with --validate, cleanup on failure or cancel, artifacts', () => {
    const { workflow } = load(NIGHTLY);
    expect(Object.keys(workflow.on).sort()).toEqual(['schedule', 'workflow_dispatch']);
    const build = workflow.jobs.build!;
    expect(build.permissions?.['id-token']).toBe('write');
    expect(build.strategy?.['fail-fast']).toBe(false);
    expect(build.strategy?.matrix.target).toBe('${{ fromJSON(needs.targets.outputs.list) }}');
    const uses = build.steps.map((s) => s.uses ?? '');
    expect(uses).toEqual(expect.arrayContaining(['aws-actions/configure-aws-credentials@v4', 'google-github-actions/auth@v2', 'actions/upload-artifact@v4']));
    expect(build.steps.find((s) => s.env?.AZURE_CLIENT_ID)?.run).toContain('AZURE_FEDERATED_TOKEN_FILE');
    const buildStep = stepRunning(build, /kiln\.js build /)!;
    expect(buildStep.run).toMatch(/--validate/);
    expect(buildStep.run).toMatch(/--no-publish/);
    expect(buildStep['timeout-minutes']).toBeLessThan(build['timeout-minutes']!);
    const cleanup = stepRunning(build, /kiln\.js cleanup --run/)!;
    expect(cleanup.if).toMatch(/failure\(\)/);
    expect(cleanup.if).toMatch(/cancelled\(\)/);
    expect(build.steps.indexOf(cleanup)).toBeGreaterThan(build.steps.indexOf(buildStep));
    const upload = build.steps.find((s) => s.uses?.startsWith('actions/upload-artifact'))!;
    expect(upload.if).toBe('always()');
    expect(upload.with?.path).toMatch(/kiln-manifest\.json/);
    expect(upload.with?.path).toMatch(/build\.log/);
    expect(upload.with?.path).not.toMatch(/ssh_key|\.kiln\/?\s*$|\*\*/m);
  });

  it('release: version tags and dispatch, 4 shards, cleanup, per-shard manifests, merge, notes, pull request', () => {
    const { workflow } = load(RELEASE);
    expect((workflow.on.push as { tags: string[] }).tags).toEqual(['v[0-9]+.[0-9]+.[0-9]+*']);
    expect(workflow.on.workflow_dispatch).toMatchObject({ inputs: { version: { required: true } } });
    const build = workflow.jobs.build!;
    expect(build.strategy?.matrix.shard).toEqual([1, 2, 3, 4]);
    expect(workflow.env?.SHARDS).toBe(4);
    expect(build.strategy?.['fail-fast']).toBe(false);
    expect(stepRunning(build, /kiln\.js build /)?.run).toMatch(/--shard "\$SHARD\/\$SHARDS" --run-id "\$RUN_ID" .*--manifest "manifest-shard-\$SHARD\.json"/);
    expect(stepRunning(build, /kiln\.js cleanup --run "\$RUN_ID"/)?.if).toBe('failure() || cancelled()');
    const upload = build.steps.find((s) => s.with?.name === 'manifest-shard-${{ matrix.shard }}')!;
    expect(upload.if).toBe('always()');
    expect(upload.with?.path).toBe('manifest-shard-${{ matrix.shard }}.json');

    const notes = workflow.jobs.notes!;
    expect(notes.needs).toEqual(['prepare', 'build']);
    expect(notes.if).toMatch(/!cancelled\(\)/);
    expect(notes.steps.find((s) => s.uses?.startsWith('actions/download-artifact'))?.with).toMatchObject({ pattern: 'manifest-shard-*', 'merge-multiple': true });
    expect(stepRunning(notes, /kiln\.js manifest merge kiln-manifest\.json shards\/manifest-shard-\*\.json/)).toBeDefined();
    expect(stepRunning(notes, /kiln\.js release notes kiln-manifest\.json --changelog CHANGELOG\.md/)).toBeDefined();
    const pr = notes.steps.find((s) => s.uses?.startsWith('peter-evans/create-pull-request'))!;
    expect(pr.with).toMatchObject({ 'body-path': 'release-notes.md', 'add-paths': 'CHANGELOG.md' });
    expect(notes.permissions).toEqual({ contents: 'write', 'pull-requests': 'write' });
  });

  it('finds the kiln calls in scripts (continuations, quotes, $(...), redirections)', () => {
    const calls = kilnCalls(['a && ./bin/kiln.js cleanup --run "$(jq -r .runId m.json)"\n./bin/kiln.js build x \\\n  --shard "$S/4" --size=all > out.txt']);
    expect(calls).toEqual([
      ['cleanup', '--run', '"$(jq -r .runId m.json)"'],
      ['build', 'x', '--shard', '"$S/4"', '--size=all'],
    ]);
  });

  it('call only kiln commands and flags that exist (--help lists them)', { timeout: 30_000 }, async () => {
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const path of [NIGHTLY, RELEASE]) {
      const { workflow } = load(path);
      const calls = kilnCalls(runs(workflow));
      expect(calls.length, path).toBeGreaterThan(1);
      for (const call of await Promise.all(calls.map(resolveCall))) {
        const name = call.path.join(' ');
        seen.add(name);
        if (call.helpText === undefined) {
          problems.push(`${path}: kiln ${name}: no such command (\`kiln ${name} --help\` shows no help for it)`);
          continue;
        }
        for (const flag of call.flags) {
          if (!new RegExp(`(^|[\\s,])${flag}(?=[\\s,=<[]|$)`, 'm').test(call.helpText)) problems.push(`${path}: kiln ${name} ${flag}: not in \`kiln ${name} --help\``);
        }
      }
    }
    expect(problems).toEqual([]);
    expect([...seen].sort()).toEqual(['build', 'check', 'cleanup', 'manifest merge', 'release notes']);
  });
});
