/**
 * ARM error bodies: `{"error":{"code","message","target"?,"details"?}}` with the HTTP status ARM
 * uses for each code. Handlers throw `ArmError`; the server turns it into the response, and the
 * LRO machinery turns it into a failed operation's `error`.
 */

export interface ArmErrorBody {
  code: string;
  message: string;
  target?: string;
  details?: ArmErrorBody[];
}

export class ArmError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: { target?: string; details?: ArmErrorBody[]; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = 'ArmError';
  }

  toBody(): { error: ArmErrorBody } {
    const error: ArmErrorBody = { code: this.code, message: this.message };
    if (this.extra.target) error.target = this.extra.target;
    if (this.extra.details) error.details = this.extra.details;
    return { error };
  }
}

/** Short type name as ARM prints it in messages: `Microsoft.Compute/virtualMachines/vm1`. */
function typeAndName(type: string, names: string[]): string {
  const [ns, ...types] = type.split('/');
  const parts = [ns];
  types.forEach((t, i) => parts.push(t, names[i] ?? ''));
  return parts.join('/');
}

export const armErrors = {
  missingApiVersion: () =>
    new ArmError(
      400,
      'MissingApiVersionParameter',
      "The api-version query parameter (?api-version=) is required for all requests.",
    ),
  invalidApiVersion: (version: string, supported: readonly string[]) =>
    new ArmError(
      400,
      'InvalidApiVersionParameter',
      `The api-version '${version}' is invalid. The supported versions are '${supported.join(',')}'.`,
    ),
  authenticationFailed: (message: string) => new ArmError(401, 'AuthenticationFailed', message),
  subscriptionNotFound: (sub: string) =>
    new ArmError(404, 'SubscriptionNotFound', `The subscription '${sub}' could not be found.`),
  resourceGroupNotFound: (rg: string) =>
    new ArmError(404, 'ResourceGroupNotFound', `Resource group '${rg}' could not be found.`),
  resourceGroupBeingDeleted: (rg: string) =>
    new ArmError(
      409,
      'ResourceGroupBeingDeleted',
      `The resource group '${rg}' is in deprovisioning state and cannot perform this operation.`,
    ),
  /** Tracked resource (or nested resource) missing: what ARM answers for a GET/DELETE on an absent name. */
  resourceNotFound: (type: string, names: string[], rg: string) =>
    new ArmError(
      404,
      'ResourceNotFound',
      `The Resource '${typeAndName(type, names)}' under resource group '${rg}' was not found. ` +
        'For more details please go to https://aka.ms/ARMResourceNotFoundFix',
    ),
  /** Microsoft.Network answers a missing child resource (subnet) with a plain `NotFound`. */
  notFound: (id: string) => new ArmError(404, 'NotFound', `Resource ${id} not found.`),
  parentNotFound: (type: string, parentId: string) =>
    new ArmError(
      404,
      'ParentResourceNotFound',
      `Failed to perform 'write' on resource(s) of type '${type.split('/').slice(1).join('/')}', ` +
        `because the parent resource '${parentId}' could not be found.`,
    ),
  invalidParameter: (message: string, target?: string) =>
    new ArmError(400, 'InvalidParameter', message, target ? { target } : {}),
  invalidReference: (ref: string, by: string) =>
    new ArmError(
      400,
      'InvalidResourceReference',
      `Resource ${ref} referenced by resource ${by} was not found. ` +
        'Please make sure that the referenced resource exists, and that both resources are in the same region.',
    ),
  badRequest: (code: string, message: string) => new ArmError(400, code, message),
  conflict: (message: string, code = 'Conflict') => new ArmError(409, code, message),
  operationNotAllowed: (message: string) => new ArmError(409, 'OperationNotAllowed', message),
  cannotDeleteNested: (nested: string[]) =>
    new ArmError(
      409,
      'CannotDeleteResource',
      'Cannot delete resource while nested resources exist. Some existing nested resource IDs include: ' +
        `'${nested.join(', ')}'. Please delete all nested resources before deleting this resource.`,
    ),
  tooManyRequests: (retryAfterSeconds: number) =>
    new ArmError(
      429,
      'TooManyRequests',
      'The request is being throttled as the limit has been reached for operation type. Please retry after the time given in Retry-After.',
      { headers: { 'retry-after': String(retryAfterSeconds) } },
    ),
  internal: (status = 500) =>
    status === 503
      ? new ArmError(503, 'ServiceUnavailable', 'The service is temporarily unavailable. Please retry later.')
      : new ArmError(status, 'InternalServerError', 'The server encountered an internal error. Please retry the request.'),
  notImplemented: (what: string) =>
    new ArmError(501, 'NotImplementedInFake', `The ARM fake does not model ${what}.`),
  noRoute: (method: string, path: string) =>
    new ArmError(
      404,
      'InvalidResourceType',
      `The ARM fake has no route for ${method} ${path}.`,
    ),
};

/** Turns anything thrown into an ArmError (unexpected exceptions become a 500 with the message). */
export function asArmError(err: unknown): ArmError {
  if (err instanceof ArmError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ArmError(500, 'InternalServerError', `fake internal error: ${message}`);
}
