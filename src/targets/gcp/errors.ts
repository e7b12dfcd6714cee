/**
 * What the Compute Engine API said when a call failed, from whatever the SDK threw: a GaxiosError
 * (REST transport: HTTP `status`/`code`, the JSON error body as `message`), a GoogleError (gRPC-style
 * numeric `code`, maybe a `reason`), a network error (`code` ECONNRESET...), or a KilnError made
 * from a failed operation (`context.reason` = the operation's error code). Plus the decisions built
 * on it: transient (retry), not found (already gone), and the CLOUD KilnError naming the resource.
 */
import { KilnError } from '../../core/errors.js';

/** What the API said, from a GaxiosError (HTTP status, JSON body as message) or a GoogleError. */
export interface ApiFailure {
  status?: number;
  /** `error.errors[0].reason` (notFound, alreadyExists, rateLimitExceeded...), or the operation's error code. */
  reason?: string;
  message: string;
  /** Node network error code (ECONNRESET...), if the request never got an answer. */
  network?: string;
}

/** gRPC status codes a GoogleError may carry, as the HTTP statuses GCE uses. */
const GRPC_TO_HTTP: Record<number, number> = { 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 412, 10: 409, 13: 500, 14: 503, 16: 401 };

export function apiFailure(err: unknown): ApiFailure {
  if (err instanceof KilnError) {
    const { status, reason } = err.context;
    return { status: typeof status === 'number' ? status : undefined, reason: typeof reason === 'string' ? reason : undefined, message: err.message };
  }
  const e = (err ?? {}) as { status?: unknown; code?: unknown; message?: unknown; reason?: unknown; response?: { status?: unknown; data?: unknown } };
  const text = typeof e.message === 'string' ? e.message : String(err);
  const body = parseBody(text) ?? parseBody(e.response?.data);
  let status = typeof e.status === 'number' ? e.status : typeof e.response?.status === 'number' ? e.response.status : undefined;
  if (status === undefined && typeof e.code === 'number') status = e.code >= 100 ? e.code : GRPC_TO_HTTP[e.code];
  status ??= typeof body?.code === 'number' ? body.code : undefined;
  const reason = body?.errors?.[0]?.reason ?? (typeof e.reason === 'string' ? e.reason : undefined) ?? body?.status;
  const network = typeof e.code === 'string' && /^E[A-Z_]+$/.test(e.code) ? e.code : undefined;
  return { status, reason, message: firstLine(body?.message ?? text), network };
}

interface ErrorBody {
  code?: number;
  message?: string;
  status?: string;
  errors?: { reason?: string }[];
}

function parseBody(value: unknown): ErrorBody | undefined {
  let parsed = value;
  if (typeof value === 'string') {
    if (!value.trimStart().startsWith('{')) return undefined;
    try {
      parsed = JSON.parse(value);
    } catch {
      return undefined;
    }
  }
  const error = (parsed as { error?: unknown } | null)?.error;
  return error && typeof error === 'object' ? (error as ErrorBody) : undefined;
}

const RETRY_REASONS = new Set(['rateLimitExceeded', 'userRateLimitExceeded', 'backendError', 'internalError', 'RESOURCE_EXHAUSTED', 'UNAVAILABLE']);
const RETRY_NETWORK = new Set(['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ECONNABORTED', 'ESOCKETTIMEDOUT']);

/** Throttling and server-side trouble: worth another try. */
export function isTransient(f: ApiFailure): boolean {
  if (f.status === 429 || (f.status !== undefined && f.status >= 500)) return true;
  if (f.reason && RETRY_REASONS.has(f.reason)) return true;
  return f.network !== undefined && RETRY_NETWORK.has(f.network);
}

export function isNotFound(err: unknown): boolean {
  const f = apiFailure(err);
  return f.status === 404 || f.reason === 'notFound' || f.reason === 'RESOURCE_NOT_FOUND';
}

export function hasReason(err: unknown, ...reasons: string[]): boolean {
  const reason = apiFailure(err).reason;
  return reason !== undefined && reasons.includes(reason);
}

/** A CLOUD KilnError for `what` (e.g. "creating instance") on `resource`, keeping the API's reason. */
export function cloudError(err: unknown, what: string, resource: string): KilnError {
  if (err instanceof KilnError) return err;
  const f = apiFailure(err);
  const reason = f.reason ?? f.network ?? (f.status ? `HTTP ${f.status}` : 'unknown');
  return new KilnError('CLOUD', `GCE: ${what} ${resource} failed: ${reason}: ${f.message}`, { resource, reason, status: f.status }, { cause: err });
}

function firstLine(message: string): string {
  const line = message.split('\n').find((l) => l.trim() !== '') ?? message;
  return line.length > 500 ? `${line.slice(0, 500)}...` : line;
}
