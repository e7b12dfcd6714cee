/**
 * Turning what the Azure SDKs throw into KilnErrors that name the ARM error code and the resource:
 * a RestError carries `code` and `statusCode`; a failed long-running operation is a plain Error whose
 * message reads "The long-running operation has failed. <Code>. <message>".
 */
import { KilnError } from '../../core/errors.js';

export interface ArmFailure {
  code?: string;
  status?: number;
  message: string;
}

export function armFailure(err: unknown): ArmFailure {
  if (!(err instanceof Error)) return { message: String(err) };
  const e = err as Error & { code?: unknown; statusCode?: unknown };
  const status = typeof e.statusCode === 'number' ? e.statusCode : undefined;
  let code = typeof e.code === 'string' && e.code !== '' ? e.code : undefined;
  code ??= /long-running operation has failed\.\s*([A-Za-z][\w.]*)\./.exec(e.message)?.[1];
  return { ...(code ? { code } : {}), ...(status ? { status } : {}), message: firstLine(e.message) };
}

const NOT_FOUND = new Set(['NotFound', 'ResourceNotFound', 'ResourceGroupNotFound', 'ParentResourceNotFound', 'RoleAssignmentNotFound']);

/** True for "it is not there": what a delete of a deleted thing, or a get of a missing one, says. */
export function isNotFound(err: unknown): boolean {
  const f = armFailure(err);
  return f.status === 404 || (f.code !== undefined && NOT_FOUND.has(f.code));
}

export function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || (err as { code?: unknown }).code === 'ABORT_ERR');
}

/** A CLOUD KilnError for `what` (e.g. "creating VM x") on `resource`, keeping the ARM code. */
export function cloudError(err: unknown, what: string, resource: string): KilnError {
  if (err instanceof KilnError) return err;
  if (isAbort(err)) return new KilnError('INTERRUPTED', `${what} was interrupted`, { resource }, { cause: err });
  const f = armFailure(err);
  const code = f.code ?? (f.status ? `HTTP${f.status}` : 'Unknown');
  return new KilnError('CLOUD', `${what} failed: ${code}: ${f.message}`, { resource, code, ...(f.status ? { status: f.status } : {}) }, { cause: err });
}

/** Runs an SDK call, rethrowing its failure as a CLOUD KilnError naming the resource. */
export async function arm<T>(what: string, resource: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw cloudError(err, what, resource);
  }
}

/** Like `arm`, but a missing resource is `undefined` instead of an error. */
export async function armGet<T>(what: string, resource: string, call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw cloudError(err, what, resource);
  }
}

function firstLine(message: string): string {
  const line = message.split('\n').find((l) => l.trim() !== '') ?? message;
  return line.length > 500 ? `${line.slice(0, 500)}...` : line;
}
