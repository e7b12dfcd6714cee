/**
 * HTTP front of the EC2 fake: the EC2 Query protocol on 127.0.0.1.
 *
 * Models: form-encoded POST (or GET query) requests `Action=...&Version=2016-11-15&...`, the region
 * taken from the SigV4 Authorization header's credential scope (every region is served at once),
 * XML responses in the 2016-11-15 namespace with a requestId, EC2's error document
 * (`<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`) with EC2's
 * HTTP statuses, DryRun (DryRunOperation, 412), fault injection (RequestLimitExceeded 503,
 * InternalError 500 / Unavailable 503) and per-action interceptors for scripted failures.
 *
 * Leaves out: signature verification (any credentials are accepted, only the scope is read),
 * presigned/query-string auth, other API versions, and the JSON-ish Smithy RPCv2 variants.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody } from '../common/http.js';
import type { FaultInjector } from '../common/faults.js';
import type { ActionHandler } from './actions/common.js';
import { Ec2Error } from './errors.js';
import { decodeQuery, parseForm, Params } from './query.js';
import type { Ec2State } from './state.js';
import { renderError, renderResponse } from './xml.js';

export interface Interception {
  action: string;
  region: string;
  params: Params;
  /** 1-based count of calls to this action that reached the interceptors (faulted calls excluded). */
  nth: number;
}

/**
 * What an interceptor decides: an Ec2Error answers the call with it before anything happens;
 * `{ error, after: true }` serves the call (its effects happen) and then answers with the error,
 * as when a response is lost; nothing serves the call normally.
 */
export type Verdict = Ec2Error | { error: Ec2Error; after: true } | undefined | void;
export type Interceptor = (call: Interception) => Verdict | Promise<Verdict>;

export interface CallRecord {
  action: string;
  region: string;
  status: number;
  errorCode?: string;
}

const CREDENTIAL_SCOPE = /Credential=([^/,\s]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request/;

export function regionFromAuthorization(header: string | undefined): string | undefined {
  return header ? CREDENTIAL_SCOPE.exec(header)?.[3] : undefined;
}

export class Ec2Server {
  readonly interceptors: Interceptor[] = [];
  /** Every request answered, in order: for asserting retries, faults and call counts. */
  readonly calls: CallRecord[] = [];
  /** Exceptions that were not Ec2Errors: bugs in the fake (answered as InternalError). */
  readonly unexpectedErrors: unknown[] = [];
  private readonly counts = new Map<string, number>();
  private serverErrors = 0;

  constructor(
    private readonly state: Ec2State,
    private readonly faults: FaultInjector,
    private readonly actions: Record<string, ActionHandler>,
  ) {}

  readonly handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = randomUUID();
    const body = await readBody(req);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const pairs = [...url.searchParams.entries(), ...parseForm(body)];
    const params = new Params(decodeQuery(pairs));
    const action = params.str('Action') ?? '';
    const region = regionFromAuthorization(req.headers.authorization) ?? '';
    const send = (status: number, xml: string, errorCode?: string) => {
      this.calls.push({ action, region, status, errorCode });
      res.writeHead(status, {
        'content-type': 'text/xml;charset=UTF-8',
        'x-amzn-requestid': requestId,
        'content-length': Buffer.byteLength(xml),
      });
      res.end(xml);
    };
    const fail = (err: Ec2Error) => send(err.status, renderError(err.code, err.message, requestId), err.code);
    try {
      if (!action) throw new Ec2Error('MissingAction', 'The request must contain the parameter Action');
      if (!region) {
        throw new Ec2Error('AuthFailure', 'AWS was not able to validate the provided access credentials');
      }
      const handler = this.actions[action];
      if (!handler) throw new Ec2Error('InvalidAction', `The action ${action} is not valid for this web service.`);
      const fault = this.faults.next(action);
      if (fault === 'throttle') throw new Ec2Error('RequestLimitExceeded', 'Request limit exceeded.');
      if (fault === 'server-error') {
        throw this.serverErrors++ % 2 === 0
          ? new Ec2Error('InternalError', 'An internal error has occurred')
          : new Ec2Error('Unavailable', 'The server is overloaded or unable to process the request');
      }
      const nth = (this.counts.get(action) ?? 0) + 1;
      this.counts.set(action, nth);
      let lostResponse: Ec2Error | undefined;
      for (const interceptor of this.interceptors) {
        const verdict = await interceptor({ action, region, params, nth });
        if (verdict instanceof Ec2Error) throw verdict;
        if (verdict) lostResponse ??= verdict.error;
      }
      if (params.bool('DryRun') === true) {
        throw new Ec2Error('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.');
      }
      const result = await handler({ state: this.state, region: this.state.region(region), params, requestId });
      if (lostResponse) throw lostResponse;
      send(200, renderResponse(action, requestId, result));
    } catch (err) {
      if (err instanceof Ec2Error) return fail(err);
      this.unexpectedErrors.push(err);
      fail(new Ec2Error('InternalError', `An internal error has occurred (${String(err)})`));
    }
  };
}
