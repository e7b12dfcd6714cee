/**
 * Compute Engine error bodies, as the v1 REST API returns them: the legacy Apiary shape
 * `{"error":{"code":404,"message":"...","errors":[{"domain":"global","reason":"notFound","message":"..."}]}}`,
 * plus `status` and an `ErrorInfo` detail on quota (429) errors like the ESF front end adds.
 * Also the failure recorded in an Operation's `error.errors[]` (codes like RESOURCE_NOT_FOUND).
 */

/** An HTTP error the fake answers a request with. */
export class GceHttpError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly reason: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }

  body(): Record<string, unknown> {
    return {
      error: {
        code: this.httpStatus,
        message: this.message,
        errors: [{ message: this.message, domain: 'global', reason: this.reason }],
        ...this.extra,
      },
    };
  }
}

const path = (resourcePath: string) => `'${resourcePath}'`;

export const notFound = (resourcePath: string) =>
  new GceHttpError(404, 'notFound', `The resource ${path(resourcePath)} was not found`);

export const alreadyExists = (resourcePath: string) =>
  new GceHttpError(409, 'alreadyExists', `The resource ${path(resourcePath)} already exists`);

export const inUseBy = (resourcePath: string, user: string) =>
  new GceHttpError(
    400,
    'resourceInUseByAnotherResource',
    `The disk resource ${path(resourcePath)} is already being used by ${path(user)}`,
  );

export const notReady = (resourcePath: string) =>
  new GceHttpError(400, 'resourceNotReady', `The resource ${path(resourcePath)} is not ready`);

/** `Invalid value for field 'x': 'v'. <why>` with reason `invalid`. */
export const invalidField = (field: string, value: unknown, why: string) =>
  new GceHttpError(
    400,
    'invalid',
    `Invalid value for field '${field}': '${typeof value === 'string' ? value : JSON.stringify(value ?? '')}'. ${why}`,
  );

export const required = (field: string) =>
  new GceHttpError(400, 'required', `Required field '${field}' not specified`);

export const badRequest = (message: string) => new GceHttpError(400, 'badRequest', message);

export const conditionNotMet = (message: string) => new GceHttpError(412, 'conditionNotMet', message);

export const unauthenticated = () =>
  new GceHttpError(
    401,
    'required',
    'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
    { status: 'UNAUTHENTICATED' },
  );

export const rateLimitExceeded = (method: string) =>
  new GceHttpError(
    429,
    'rateLimitExceeded',
    "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service 'compute.googleapis.com'.",
    {
      status: 'RESOURCE_EXHAUSTED',
      details: [
        {
          '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
          reason: 'RATE_LIMIT_EXCEEDED',
          domain: 'googleapis.com',
          metadata: { service: 'compute.googleapis.com', method: `compute.v1.${method}`, quota_metric: 'compute.googleapis.com/default' },
        },
      ],
    },
  );

export const backendError = () =>
  new GceHttpError(503, 'backendError', 'Internal error. Please try again or contact Google Support.');

export const noRoute = (verb: string, url: string) =>
  new GceHttpError(404, 'notFound', `fake GCE: no route for ${verb} ${url}`);

/** A failure recorded on an Operation (it ends DONE with `error.errors[]`). */
export interface OperationErrorSpec {
  /** e.g. RESOURCE_NOT_FOUND, QUOTA_EXCEEDED, ZONE_RESOURCE_POOL_EXHAUSTED, INTERNAL_ERROR. */
  code: string;
  message: string;
  /** httpErrorStatusCode on the operation (default 400). */
  httpStatus?: number;
  location?: string;
}

export class OperationFailure extends Error {
  constructor(readonly spec: OperationErrorSpec) {
    super(spec.message);
  }
}

export const HTTP_REASON_PHRASES: Record<number, string> = {
  400: 'BAD REQUEST',
  403: 'FORBIDDEN',
  404: 'NOT FOUND',
  409: 'CONFLICT',
  412: 'PRECONDITION FAILED',
  429: 'TOO MANY REQUESTS',
  500: 'INTERNAL SERVER ERROR',
  503: 'SERVICE UNAVAILABLE',
};
