/**
 * The build VM's SSH host keys, as the guest itself publishes them: guest attributes `hostkeys/<type>`
 * (google-guest-agent, with metadata enable-guest-attributes=TRUE) or the serial console's
 * `-----BEGIN SSH HOST KEY KEYS-----` block (cloud-init / the guest agent). Polled until a deadline;
 * an empty answer means "cannot verify", which the SSH module reports.
 */
import { formatDuration } from '../../core/duration.js';
import { isKilnError } from '../../core/errors.js';
import { done, notYet, waitFor } from '../../core/wait.js';
import { parsePublicKeyLine } from '../../ssh/index.js';
import type { GceApi, Scope } from './client.js';
import { apiFailure, isNotFound } from './errors.js';
import { instancePath } from './instance.js';

export interface HostKeyLookup {
  keys: string[];
  /** Where they came from, or why there are none. */
  source: string;
}

/** OpenSSH lines (`ssh-ed25519 AAAA...`) from a console's host key block; malformed lines are skipped. */
export function hostKeysFromConsole(console: string): string[] {
  const block = /-----BEGIN SSH HOST KEY KEYS-----([\s\S]*?)-----END SSH HOST KEY KEYS-----/.exec(console)?.[1] ?? '';
  const keys: string[] = [];
  for (const line of block.split('\n')) {
    const m = /((?:ssh|ecdsa|sk)-[a-z0-9@.-]+)\s+(AAAA[A-Za-z0-9+/]+={0,2})/.exec(line);
    if (m?.[1] && m[2]) keys.push(`${m[1]} ${m[2]}`);
  }
  return valid(keys);
}

function valid(lines: string[]): string[] {
  return [
    ...new Set(
      lines.filter((line) => {
        try {
          parsePublicKeyLine(line);
          return true;
        } catch {
          return false;
        }
      }),
    ),
  ];
}

async function fromGuestAttributes(api: GceApi, scope: Scope, project: string, zone: string, name: string): Promise<string[]> {
  try {
    const [attrs] = await api.call(scope, 'reading host keys of', instancePath(project, zone, name), () =>
      api.clients.instances.getGuestAttributes({ project, zone, instance: name, queryPath: 'hostkeys/' }),
    );
    return valid((attrs.queryValue?.items ?? []).filter((i) => i.namespace === 'hostkeys' && i.key && i.value).map((i) => `${i.key} ${i.value}`));
  } catch (err) {
    if (isNotFound(err)) return []; // not published yet
    throw err;
  }
}

async function fromSerialConsole(api: GceApi, scope: Scope, project: string, zone: string, name: string): Promise<string[]> {
  try {
    const [output] = await api.call(scope, 'reading the serial console of', instancePath(project, zone, name), () =>
      api.clients.instances.getSerialPortOutput({ project, zone, instance: name, port: 1 }),
    );
    return hostKeysFromConsole(output.contents ?? '');
  } catch (err) {
    if (isNotFound(err) || apiFailure(err).reason === 'resourceNotReady') return [];
    throw err;
  }
}

/** Polls both sources until one has keys or `timeoutMs` passes; never throws for "not there". */
export async function lookupHostKeys(api: GceApi, scope: Scope, project: string, zone: string, name: string, timeoutMs: number): Promise<HostKeyLookup> {
  const problems = new Set<string>();
  const attempt = async (source: string, read: () => Promise<string[]>): Promise<string[]> => {
    try {
      return await read();
    } catch (err) {
      scope.signal?.throwIfAborted();
      // A permission or API problem with one source must not fail the build: SSH can still go on unverified.
      problems.add(`${source}: ${isKilnError(err) ? err.message : String(err)}`);
      return [];
    }
  };
  try {
    return await waitFor(
      async () => {
        const attributes = await attempt('guest attributes', () => fromGuestAttributes(api, scope, project, zone, name));
        if (attributes.length > 0) return done({ keys: attributes, source: 'guest attributes hostkeys/' });
        const console = await attempt('serial console', () => fromSerialConsole(api, scope, project, zone, name));
        if (console.length > 0) return done({ keys: console, source: 'the serial console' });
        return notYet('no host keys published yet');
      },
      { what: `SSH host keys of ${instancePath(project, zone, name)}`, timeoutMs, signal: scope.signal, initialDelayMs: api.pollMs, maxDelayMs: 5_000 },
    );
  } catch (err) {
    scope.signal?.throwIfAborted();
    if (!isKilnError(err) || err.code !== 'TIMEOUT') throw err;
    const why = problems.size > 0 ? ` (${[...problems].join('; ')})` : '';
    return { keys: [], source: `neither guest attributes nor the serial console showed host keys within ${formatDuration(timeoutMs)}${why}` };
  }
}

/** lookupHostKeys, saying in the log where the keys came from or why there are none. */
export async function instanceHostKeys(api: GceApi, scope: Scope, project: string, zone: string, name: string, timeoutMs: number): Promise<string[]> {
  const found = await lookupHostKeys(api, scope, project, zone, name, timeoutMs);
  if (found.keys.length > 0) scope.log(`gcp: ${found.keys.length} host key(s) of ${name} from ${found.source}`);
  else scope.log(`gcp: no SSH host keys for ${name}: ${found.source}`);
  return found.keys;
}
