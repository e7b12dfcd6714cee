/** The `ssh` command line a person types to get into a build VM kiln kept (on-error abort). */
import { shellQuote } from './shell.js';

export function sshCommandLine(access: { host: string; port: number; username: string }, keyPath: string): string {
  const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : shellQuote(s));
  return ['ssh', '-i', quote(keyPath), '-p', String(access.port), '-o', 'IdentitiesOnly=yes', quote(`${access.username}@${access.host}`)].join(' ');
}
