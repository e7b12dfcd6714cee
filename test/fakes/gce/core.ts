/** What every route handler receives: the fake's parts and the parsed request. */
import type { LoopbackAddresses, MachineBackend } from '../common/machines.js';
import type { Transitions } from '../common/transitions.js';
import type { OperationErrorSpec } from './errors.js';
import type { Operations } from './operations.js';
import type { GceState } from './state.js';

export interface CoreOptions {
  /** `user` recorded on operations. */
  user: string;
  /** How long operations.wait blocks before returning a not-DONE operation (the API's bound is 2 minutes). */
  waitBoundMs: number;
  /**
   * Publish a synthetic `hostkeys/ssh-ed25519` guest attribute when an instance with metadata
   * `enable-guest-attributes=TRUE` reaches RUNNING, if its console shows no host keys.
   */
  synthesizeHostKeys: boolean;
}

export interface GceCore {
  state: GceState;
  operations: Operations;
  transitions: Transitions;
  machines: MachineBackend;
  addresses: LoopbackAddresses;
  options: CoreOptions;
}

export interface Call {
  /** API method, e.g. `images.insert`, `zoneOperations.wait`. */
  method: string;
  /** Path parameters: project, zone, and the resource name under its API parameter name. */
  params: Record<string, string>;
  query: URLSearchParams;
  /** Parsed JSON body ({} when empty). */
  body: Record<string, unknown>;
  /** Set by an interceptor: the operation this call starts ends with this error, with no side effects. */
  forcedOperationError?: OperationErrorSpec;
  /** Set by an interceptor: the operation this call starts stays PENDING until this settles. */
  hold?: Promise<void>;
}

/** A route handler returns the JSON body of a 200 response, or throws a GceHttpError. */
export type Handler = (core: GceCore, call: Call) => unknown;

export const param = (call: Call, name: string): string => {
  const value = call.params[name];
  if (value === undefined) throw new Error(`fake GCE: route has no parameter ${name}`);
  return value;
};

export const queryFlag = (call: Call, name: string): boolean => call.query.get(name) === 'true';
