/**
 * A stand-in for Google's Security Token Service (sts.googleapis.com/v1/token), so that a kiln
 * process configured only through Application Default Credentials can reach the GCE fake with no
 * call to Google: `adcFile()` writes a workload identity federation credentials file (type
 * external_account, as CI systems use) whose `token_url` is this server. google-auth-library
 * exchanges the subject token here for an access token, which the GCE fake accepts like any
 * bearer token.
 *
 * Models only the token exchange grant with a file-sourced subject token; no service account
 * impersonation, no validation of the subject token beyond it being present.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { listenOnLoopback, readBody } from '../common/http.js';

export interface StsFake {
  url: string;
  /** Token exchanges served. */
  exchanges: number;
  /** Writes the subject token and an external_account ADC file into `dir`; returns the file's path. */
  adcFile(dir: string): Promise<string>;
  close(): Promise<void>;
}

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

export async function startStsFake(): Promise<StsFake> {
  let exchanges = 0;
  const running = await listenOnLoopback(async (req, res) => {
    const form = new URLSearchParams(await readBody(req));
    const ok = req.method === 'POST' && new URL(req.url ?? '/', 'http://sts').pathname === '/v1/token' && form.get('grant_type') === TOKEN_EXCHANGE && Boolean(form.get('subject_token'));
    if (ok) exchanges++;
    const body = ok
      ? { access_token: `kiln-sts-token-${exchanges}`, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 3600 }
      : { error: 'invalid_request', error_description: 'expected a token exchange with a subject token at POST /v1/token' };
    res.writeHead(ok ? 200 : 400, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  return {
    url: running.url,
    get exchanges() {
      return exchanges;
    },
    async adcFile(dir) {
      const subject = path.join(dir, 'sts-subject-token');
      const file = path.join(dir, 'adc-external-account.json');
      await writeFile(subject, 'kiln-ci-subject-token', { mode: 0o600 });
      const adc = {
        type: 'external_account',
        audience: '//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/kiln/providers/ci',
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        token_url: `${running.url}/v1/token`,
        credential_source: { file: subject },
      };
      await writeFile(file, JSON.stringify(adc, null, 2), { mode: 0o600 });
      return file;
    },
    close: () => running.close(),
  };
}
