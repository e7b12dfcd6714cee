/**
 * A local HTTP server (127.0.0.1 only) serving a directory made by standins/build.ts: the K3s and
 * Helm release layouts with their checksum files, the chart repository, any other files (an apt
 * repository for the QEMU tests), and under /v2/ a read-only OCI distribution registry.
 *
 * URLs are decoded before lookup, so `/k3s/v1.29.6%2Bk3s2/k3s` finds `k3s/v1.29.6+k3s2/k3s` as
 * GitHub's release downloads do. Switches for failure tests, per path (exact or RegExp):
 *   - wrong-checksum: every 64-hex-digit string in the body is replaced by a different one
 *     (checksum files, index.yaml digests);
 *   - cut: send the full Content-Length, then close the connection after `afterBytes` bytes
 *     (`times` limits how often; default always; `ignoreRange` answers every request of the path
 *     with the whole file, as a server without range support would, even once the cuts are used);
 *   - status: answer with an HTTP status instead.
 * Files are served with range support (`Range: bytes=N-` gets a 206 from byte N), as release
 * sites do, so interrupted downloads can resume. The registry can demand an anonymous bearer token
 * (as Docker Hub does) with `requireToken`. Every request is recorded (method, path, status, bytes
 * sent, the range asked for).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export type Fault = { kind: 'wrong-checksum' } | { kind: 'cut'; afterBytes: number; times?: number; ignoreRange?: boolean } | { kind: 'status'; status: number };

export interface RequestRecord {
  method: string;
  path: string;
  query: string;
  status: number;
  bytes: number;
  /** The first byte a `Range: bytes=N-` request asked for. */
  rangeFrom?: number;
  fault?: Fault['kind'];
}

export interface ArtifactServer {
  /** http://127.0.0.1:<port> */
  url: string;
  host: string;
  port: number;
  root: string;
  requests: RequestRecord[];
  setFault(match: string | RegExp, fault: Fault): void;
  clearFaults(): void;
  close(): Promise<void>;
}

export interface ArtifactServerOptions {
  root: string;
  /** A 127.x.x.x address; default 127.0.0.1. */
  host?: string;
  port?: number;
  registry?: { requireToken?: boolean };
}

const TOKEN = 'kiln-standin-registry-token';

export async function startArtifactServer(options: ArtifactServerOptions): Promise<ArtifactServer> {
  const host = options.host ?? '127.0.0.1';
  if (!host.startsWith('127.')) throw new Error(`the artifact server binds loopback addresses only, not ${host}`);
  const root = path.resolve(options.root);
  const requests: RequestRecord[] = [];
  const faults: { match: string | RegExp; fault: Fault; used: number }[] = [];

  const findFault = (p: string) => faults.find((f) => (typeof f.match === 'string' ? f.match === p : f.match.test(p)));

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let decoded: string;
    try {
      decoded = decodeURIComponent(url.pathname);
    } catch {
      return send(res, 400, 'bad path');
    }
    const record: RequestRecord = { method: req.method ?? 'GET', path: decoded, query: url.search, status: 0, bytes: 0 };
    requests.push(record);
    res.on('finish', () => (record.status = res.statusCode));
    res.on('close', () => (record.status ||= res.statusCode));
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed', record);

    const entry = findFault(decoded);
    if (entry?.fault.kind === 'status') {
      record.fault = 'status';
      return send(res, entry.fault.status, `fault: status ${entry.fault.status}`, record);
    }
    if (decoded === '/token') {
      return send(res, 200, JSON.stringify({ token: TOKEN, access_token: TOKEN, expires_in: 300 }), record, 'application/json');
    }
    if (decoded === '/v2' || decoded.startsWith('/v2/')) {
      if (options.registry?.requireToken && req.headers.authorization !== `Bearer ${TOKEN}`) {
        const name = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(decoded)?.[1] ?? '';
        res.setHeader('WWW-Authenticate', `Bearer realm="http://${req.headers.host ?? `${host}`}/token",service="kiln-standin-registry",scope="repository:${name}:pull"`);
        return send(res, 401, JSON.stringify({ errors: [{ code: 'UNAUTHORIZED' }] }), record, 'application/json');
      }
      return registry(decoded, req, res, record);
    }

    const file = path.join(root, decoded);
    if (file !== root && !file.startsWith(`${root}${path.sep}`)) return send(res, 404, 'not found', record);
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) return send(res, 404, 'not found', record);

    if (entry?.fault.kind === 'wrong-checksum') {
      record.fault = 'wrong-checksum';
      const text = (await readFile(file, 'utf8')).replace(/\b[a-f0-9]{64}\b/g, (hex) => createHash('sha256').update(`wrong:${hex}`).digest('hex'));
      return send(res, 200, text, record);
    }
    const ranged = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (ranged) record.rangeFrom = Number(ranged[1]);
    const from = entry?.fault.kind === 'cut' && entry.fault.ignoreRange ? 0 : (record.rangeFrom ?? 0);
    if (from >= info.size && from > 0) {
      res.writeHead(416, { 'Content-Range': `bytes */${info.size}` });
      return void res.end();
    }
    const head = from > 0 ? { status: 206, headers: { 'Content-Range': `bytes ${from}-${info.size - 1}/${info.size}` } } : { status: 200, headers: {} };
    if (entry?.fault.kind === 'cut' && (entry.fault.times === undefined || entry.used < entry.fault.times)) {
      entry.used++;
      record.fault = 'cut';
      const data = (await readFile(file)).subarray(from);
      res.writeHead(head.status, { ...head.headers, 'Content-Length': data.length, 'Content-Type': 'application/octet-stream', 'Accept-Ranges': 'bytes' });
      const part = data.subarray(0, Math.min(entry.fault.afterBytes, data.length - 1));
      record.bytes = part.length;
      res.write(part, () => res.destroy());
      return;
    }
    res.writeHead(head.status, { ...head.headers, 'Content-Length': info.size - from, 'Content-Type': 'application/octet-stream', 'Accept-Ranges': 'bytes' });
    record.bytes = req.method === 'HEAD' ? 0 : info.size - from;
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file, { start: from }).pipe(res);
  };

  const registry = async (p: string, req: IncomingMessage, res: ServerResponse, record: RequestRecord): Promise<void> => {
    if (p === '/v2' || p === '/v2/') return send(res, 200, '{}', record, 'application/json');
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(p);
    if (!m) return send(res, 404, JSON.stringify({ errors: [{ code: 'NAME_UNKNOWN' }] }), record, 'application/json');
    const [, name, kind, ref] = m as unknown as [string, string, string, string];
    let digest = ref;
    if (kind === 'manifests' && !ref.startsWith('sha256:')) {
      digest = (await readFile(path.join(root, 'registry', 'tags', name, ref), 'utf8').catch(() => '')).trim();
      if (!digest) return send(res, 404, JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN' }] }), record, 'application/json');
    }
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) return send(res, 400, JSON.stringify({ errors: [{ code: 'DIGEST_INVALID' }] }), record, 'application/json');
    const hex = digest.slice(7);
    const data = await readFile(path.join(root, 'registry', 'blobs', hex)).catch(() => undefined);
    if (!data) return send(res, 404, JSON.stringify({ errors: [{ code: kind === 'blobs' ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN' }] }), record, 'application/json');
    const type = kind === 'manifests' ? (await readFile(path.join(root, 'registry', 'blobs', `${hex}.type`), 'utf8')).trim() : 'application/octet-stream';
    res.setHeader('Docker-Content-Digest', digest);
    record.bytes = req.method === 'HEAD' ? 0 : data.length;
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': data.length });
    res.end(req.method === 'HEAD' ? undefined : data);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, String(err));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}`,
    host,
    port,
    root,
    requests,
    setFault(match, fault) {
      faults.unshift({ match, fault, used: 0 });
    },
    clearFaults() {
      faults.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function send(res: ServerResponse, status: number, body: string, record?: RequestRecord, type = 'text/plain'): void {
  const data = Buffer.from(body);
  if (record) record.bytes = data.length;
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': data.length });
  res.end(data);
}
