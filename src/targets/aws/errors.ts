/**
 * What EC2 said when a call failed, and the decisions built on it: "not found" (already gone, or not
 * yet visible), and the CLOUD KilnError naming the action, the API's code and the resource. The SDK
 * throws an `EC2ServiceException` whose `name` is EC2's error code (`InvalidInstanceID.NotFound`,
 * `DependencyViolation`...); network and waiter errors carry other names.
 */
import { KilnError } from '../../core/errors.js';

export interface Ec2Failure {
  /** EC2's error code (the exception's name), e.g. `InvalidGroup.NotFound`. */
  code: string;
  message: string;
  status?: number;
}

export function ec2Failure(err: unknown): Ec2Failure {
  if (err instanceof KilnError) {
    const code = err.context.code;
    return { code: typeof code === 'string' ? code : err.code, message: err.message };
  }
  const e = (err ?? {}) as { name?: unknown; Code?: unknown; code?: unknown; message?: unknown; $metadata?: { httpStatusCode?: number } };
  const code = typeof e.Code === 'string' ? e.Code : typeof e.name === 'string' && e.name !== 'Error' ? e.name : typeof e.code === 'string' ? e.code : 'Unknown';
  const message = typeof e.message === 'string' ? e.message : String(err);
  return { code, message, status: e.$metadata?.httpStatusCode };
}

/** The codes EC2 answers for a resource that does not exist (any more, or yet): `Invalid<Kind>.NotFound`. */
export function isNotFoundCode(code: string): boolean {
  return code.endsWith('.NotFound');
}

export function isNotFound(err: unknown): boolean {
  return isNotFoundCode(ec2Failure(err).code);
}

export function codeOf(err: unknown): string {
  return ec2Failure(err).code;
}

export interface Ec2Context {
  /** The resource the call was about (id, or name when the id is not known). */
  resource: string;
  region: string;
}

/** A CLOUD KilnError for a failed EC2 call: `EC2 RunInstances in us-west-2 failed for kiln-x: Code: message`. */
export function cloudError(action: string, context: Ec2Context, err: unknown): KilnError {
  if (err instanceof KilnError) return err;
  if (err instanceof Error && err.name === 'AbortError') return new KilnError('INTERRUPTED', `EC2 ${action} was aborted`, { ...context, code: 'AbortError' }, { cause: err });
  const failure = ec2Failure(err);
  const message = `EC2 ${action} in ${context.region} failed for ${context.resource}: ${failure.code}: ${firstLine(failure.message)}`;
  return new KilnError('CLOUD', message, { resource: context.resource, region: context.region, code: failure.code, action }, { cause: err });
}

function firstLine(text: string): string {
  const line = text.split('\n')[0] ?? '';
  return line.length > 300 ? `${line.slice(0, 300)}...` : line;
}
