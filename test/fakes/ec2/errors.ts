/**
 * EC2 API errors as the fake raises them: a documented error code, a message and the HTTP status
 * EC2 answers with (400 for client errors unless listed below, 5xx for server errors).
 */

const STATUS: Record<string, number> = {
  AuthFailure: 401,
  UnauthorizedOperation: 403,
  DryRunOperation: 412,
  InternalError: 500,
  InternalFailure: 500,
  InsufficientInstanceCapacity: 500,
  InsufficientCapacity: 500,
  Unavailable: 503,
  ServiceUnavailable: 503,
  RequestLimitExceeded: 503,
};

export class Ec2Error extends Error {
  readonly status: number;

  constructor(
    readonly code: string,
    message: string,
    status?: number,
  ) {
    super(message);
    this.name = code;
    this.status = status ?? STATUS[code] ?? 400;
  }
}

export function notFound(code: string, kind: string, ids: string[]): Ec2Error {
  const list = ids.map((id) => `'${id}'`).join(', ');
  return new Ec2Error(
    code,
    ids.length === 1 ? `The ${kind} ${list} does not exist` : `The ${kind}s ${list} do not exist`,
  );
}
