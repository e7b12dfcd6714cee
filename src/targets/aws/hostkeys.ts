/**
 * The VM's SSH host keys from its console: cloud-init prints them between
 * `-----BEGIN SSH HOST KEY KEYS-----` and `-----END SSH HOST KEY KEYS-----` (and their fingerprints
 * in a FINGERPRINTS block). EC2 serves the console (base64) with a delay of its own, so it is polled
 * briefly; when no block shows up by the deadline the connection cannot be verified, and we say so.
 */
import { GetConsoleOutputCommand } from '@aws-sdk/client-ec2';
import { KilnError } from '../../core/errors.js';
import { done, notYet, waitFor } from '../../core/wait.js';
import { parsePublicKeyLine } from '../../ssh/index.js';
import type { CallScope, Ec2Api } from './clients.js';
import { codeOf, isNotFound } from './errors.js';

const LATEST_REFUSED = new Set(['UnsupportedOperation', 'InvalidParameter', 'InvalidParameterValue', 'InvalidParameterCombination']);

const KEY_LINE = /(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com)\s+([A-Za-z0-9+/]+={0,2})/;
const FINGERPRINT = /\b(SHA256:[A-Za-z0-9+/]{43})\b/;

/** Host keys (OpenSSH lines) from the last complete keys block; else fingerprints; else none. */
export function hostKeysFromConsole(text: string): string[] {
  const keys = lastBlock(text, 'SSH HOST KEY KEYS')
    .map((line) => KEY_LINE.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => `${m[1]} ${m[2]}`)
    .filter(validKey);
  if (keys.length > 0) return keys;
  return lastBlock(text, 'SSH HOST KEY FINGERPRINTS')
    .map((line) => FINGERPRINT.exec(line)?.[1])
    .filter((f): f is string => f !== undefined);
}

function lastBlock(text: string, title: string): string[] {
  const lines = text.split(/\r?\n/);
  let current: string[] | undefined;
  let last: string[] = [];
  for (const line of lines) {
    if (line.includes(`-----BEGIN ${title}-----`)) current = [];
    else if (line.includes(`-----END ${title}-----`)) {
      if (current) last = current;
      current = undefined;
    } else current?.push(line);
  }
  return last;
}

function validKey(line: string): boolean {
  try {
    parsePublicKeyLine(line);
    return true;
  } catch {
    return false;
  }
}

/** Polls the console until it shows host keys or `timeoutMs` passes; [] then (with why). */
export async function consoleHostKeys(api: Ec2Api, scope: CallScope, instanceId: string, timeoutMs: number): Promise<{ keys: string[]; why?: string }> {
  // Nitro instances serve the console as it is now (Latest); others only a buffered copy, minutes late.
  let latest = true;
  try {
    const keys = await waitFor(
      async () => {
        let output: string | undefined;
        try {
          const input = { InstanceId: instanceId, Latest: latest || undefined };
          const out = await api.call('GetConsoleOutput', { ...scope, resource: instanceId }, (c, o) => c.send(new GetConsoleOutputCommand(input), o));
          output = out.Output;
        } catch (err) {
          if (isNotFound(err)) return notYet('instance not visible yet');
          if (latest && LATEST_REFUSED.has(codeOf(err))) {
            latest = false;
            return notYet('the latest console is not available for this instance type');
          }
          throw err;
        }
        const text = output ? Buffer.from(output, 'base64').toString('utf8') : '';
        const found = hostKeysFromConsole(text);
        return found.length > 0 ? done(found) : notYet(text ? 'no host key block on the console yet' : 'no console output yet');
      },
      { what: `the SSH host keys on the console of ${instanceId}`, timeoutMs, initialDelayMs: api.timing.pollMs, maxDelayMs: 15_000, signal: scope.signal },
    );
    return { keys };
  } catch (err) {
    // No keys in time, or no console for us (e.g. IAM denies GetConsoleOutput): connect unverified.
    if (err instanceof KilnError && (err.code === 'TIMEOUT' || err.code === 'CLOUD')) return { keys: [], why: err.message };
    throw err;
  }
}

/** consoleHostKeys, saying in the log what was found (or why nothing can be verified). */
export async function loggedHostKeys(api: Ec2Api, scope: CallScope, instanceId: string, timeoutMs: number, log: (line: string) => void): Promise<string[]> {
  const found = await consoleHostKeys(api, scope, instanceId, timeoutMs);
  if (found.keys.length > 0) log(`aws: ${found.keys.length} SSH host key(s) of ${instanceId} from its console`);
  else log(`aws: cannot verify the SSH host key of ${instanceId}: no host keys on its console (${found.why ?? 'none printed'})`);
  return found.keys;
}
