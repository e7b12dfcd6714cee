/**
 * Wire-level fake of the Google Compute Engine REST API v1 (`/compute/v1/projects/{project}/...`)
 * on 127.0.0.1, for testing kiln's GCE driver with the unmodified `@google-cloud/compute` clients
 * (REST transport; see client-options.ts for how they are pointed here).
 *
 * Models (the calls an image-building driver makes):
 * - images: get, getFromFamily (newest READY non-deprecated), list (filter/orderBy/paging), insert
 *   (from sourceDisk or sourceImage; family, labels, storageLocations; PENDING -> READY; refused with
 *   resourceInUseByAnotherResource while the disk's instance is not TERMINATED unless forceCreate),
 *   delete, deprecate (ACTIVE/DEPRECATED/OBSOLETE/DELETED, replacement), setLabels (labelFingerprint
 *   checked), getIamPolicy/setIamPolicy (bindings, etag checked). Seeded public images: see seed.ts.
 * - instances: insert (machineType, boot + data disks via initializeParams or source, autoDelete,
 *   deviceName, ONE_TO_ONE_NAT access config, tags, metadata incl. `ssh-keys`, labels), get, list,
 *   delete, stop, start, setMetadata (fingerprint checked), getSerialPortOutput, getGuestAttributes.
 *   PROVISIONING -> STAGING -> RUNNING; stop: STOPPING -> TERMINATED. natIP is a distinct loopback
 *   address, ephemeral: released on stop, a new one on start. Operations on one instance are serialized.
 * - disks: get, list, insert, delete (resourceInUseByAnotherResource while attached), setLabels;
 *   CREATING -> READY. Disks created with an instance are deleted with it when autoDelete.
 * - firewalls: insert, get, list, delete (validated, recorded, not enforced).
 * - operations: zonal and global, PENDING -> RUNNING -> DONE, error.errors[] + httpErrorStatusCode on
 *   failure; zoneOperations/globalOperations get, list (filter, e.g. by targetLink and status,
 *   paging) and wait (blocks until DONE or `waitBoundMs`), addressed by name or numeric id; a
 *   repeated `requestId` returns the first call's operation; an interceptor can hold a call's
 *   operation PENDING (a backlogged API) until a promise settles.
 * - aggregatedList for instances and disks (every zone of the project, grouped by zone).
 * - errors: the API's JSON error bodies (notFound, alreadyExists, resourceInUseByAnotherResource,
 *   resourceNotReady, invalid, required, badRequest, conditionNotMet, 401 without a bearer token);
 *   injected 429 rateLimitExceeded / 503 backendError via FaultInjector; per-method interceptors that
 *   answer an error, make the call's operation fail or hold it.
 * - machines: every disk/instance side effect goes through MachineBackend (NullMachines by default;
 *   QemuMachines end to end, with `synthesizeHostKeys: false` and data disks under their device
 *   names). sts.ts stands in for the token exchange of ADC's workload identity federation.
 * - timing: each transition waits for a named Transitions delay (0 by default), see DELAYS.
 *
 * Leaves out: regions/regional operations, snapshots, machine images, instance templates, networks
 * and subnetworks (any network name is accepted), static IPs, aggregatedList of anything but
 * instances and disks, images.patch,
 * instances.setLabels/setTags/attachDisk/detachDisk/reset/suspend, IAM on anything but images,
 * quotas, firewall enforcement, metadata changes reaching a running guest, operation deletion,
 * `returnPartialSuccess`, most of the filter language (see list.ts), real auth (any bearer token
 * is accepted), and project existence (any project id works; public image projects are writable).
 */
import { FaultInjector, type FaultOptions } from '../common/faults.js';
import { listenOnLoopback } from '../common/http.js';
import { LoopbackAddresses, NullMachines, type MachineBackend } from '../common/machines.js';
import { Transitions, type TransitionDelays } from '../common/transitions.js';
import { gceClientOptions, type ComputeClientOptions, type FakeClientOptions } from './client-options.js';
import type { GceCore } from './core.js';
import type { OperationErrorSpec } from './errors.js';
import { OPERATION_DONE, OPERATION_RUNNING, Operations } from './operations.js';
import { DISK_DELETED, DISK_READY } from './resources/disks.js';
import { FIREWALL_APPLIED, FIREWALL_DELETED } from './resources/firewalls.js';
import { IMAGE_DELETED, IMAGE_READY } from './resources/images.js';
import {
  GUEST_HOSTKEYS,
  INSTANCE_DELETED,
  INSTANCE_RUNNING,
  INSTANCE_STAGING,
  INSTANCE_TERMINATED,
} from './resources/instances.js';
import { DEFAULT_PUBLIC_IMAGES, seedImages, type SeedImage } from './seed.js';
import { GceRouter, type Interceptor, type RequestLogEntry } from './server.js';
import { GceState } from './state.js';

export { gceClientOptions, type ComputeClientOptions } from './client-options.js';
export { GceHttpError, type OperationErrorSpec } from './errors.js';
export type { Interceptor, InterceptResult, RequestLogEntry } from './server.js';
export type { LiveResources } from './state.js';
export { GceState } from './state.js';
export { DEFAULT_PUBLIC_IMAGES, type SeedImage } from './seed.js';

/** Names of the Transitions delays (ms) a test can set through `delays` or `fake.transitions`. */
export const DELAYS = {
  operationRunning: OPERATION_RUNNING,
  operationDone: OPERATION_DONE,
  diskReady: DISK_READY,
  diskDeleted: DISK_DELETED,
  instanceStaging: INSTANCE_STAGING,
  instanceRunning: INSTANCE_RUNNING,
  instanceTerminated: INSTANCE_TERMINATED,
  instanceDeleted: INSTANCE_DELETED,
  guestHostKeys: GUEST_HOSTKEYS,
  imageReady: IMAGE_READY,
  imageDeleted: IMAGE_DELETED,
  firewallApplied: FIREWALL_APPLIED,
  firewallDeleted: FIREWALL_DELETED,
} as const;

export interface GceFakeOptions {
  /** Where disks and machines live; default NullMachines (owned and closed by the fake). */
  machines?: MachineBackend;
  /** Per-transition delays in ms, by the names in DELAYS. */
  delays?: TransitionDelays;
  faults?: FaultOptions;
  /** Public images to seed (default DEFAULT_PUBLIC_IMAGES). */
  publicImages?: SeedImage[];
  /** natIP allocator; default 127.0.20.x so it does not collide with other fakes' defaults. */
  addresses?: LoopbackAddresses;
  /** Bound for operations.wait (default 120000, the API's two minutes). */
  waitBoundMs?: number;
  /** Publish a synthetic ssh-ed25519 host key guest attribute (default true), see core.ts. */
  synthesizeHostKeys?: boolean;
  /** `user` on operations. */
  user?: string;
}

export interface GceFake {
  /** http://127.0.0.1:<port> */
  url: string;
  state: GceState;
  faults: FaultInjector;
  transitions: Transitions;
  machines: MachineBackend;
  /** Every request served: API method, verb, path, HTTP status. */
  requests: RequestLogEntry[];
  /** Options for any `@google-cloud/compute` client constructor. */
  clientOptions(options?: FakeClientOptions): ComputeClientOptions;
  /** Runs `interceptor` on each call of `method` (e.g. `images.insert`); returns a remover. */
  intercept(method: string, interceptor: Interceptor): () => void;
  /** Makes the operations of the next `times` calls of `method` end DONE with `error`. */
  failOperations(method: string, error: OperationErrorSpec, times?: number): void;
  /** Resolves with the API method of the next request to arrive (before it is served). */
  nextRequest(): Promise<string>;
  /** Changes how long operations.wait blocks before returning a not-DONE operation. */
  setWaitBound(ms: number): void;
  close(): Promise<void>;
}

export async function startGceFake(options: GceFakeOptions = {}): Promise<GceFake> {
  const ownsMachines = options.machines === undefined;
  const machines = options.machines ?? new NullMachines();
  const transitions = new Transitions(options.delays);
  const faults = new FaultInjector(options.faults);
  const state = new GceState();
  seedImages(state, options.publicImages ?? DEFAULT_PUBLIC_IMAGES);
  const coreOptions = {
    user: options.user ?? 'kiln-test@kiln-test.iam.gserviceaccount.com',
    waitBoundMs: options.waitBoundMs ?? 120_000,
    synthesizeHostKeys: options.synthesizeHostKeys ?? true,
  };
  const core: GceCore = {
    state,
    transitions,
    machines,
    addresses: options.addresses ?? new LoopbackAddresses('127.0.20.'),
    operations: new Operations(state, transitions, coreOptions),
    options: coreOptions,
  };
  const router = new GceRouter(core, faults);
  const server = await listenOnLoopback(router.handle);

  const intercept = (method: string, interceptor: Interceptor) => {
    router.interceptors.set(method, [...(router.interceptors.get(method) ?? []), interceptor]);
    return () => router.interceptors.set(method, (router.interceptors.get(method) ?? []).filter((i) => i !== interceptor));
  };

  return {
    url: server.url,
    state,
    faults,
    transitions,
    machines,
    requests: router.requests,
    clientOptions: (clientOptions) => gceClientOptions(server.url, clientOptions),
    intercept,
    failOperations(method, error, times = 1) {
      let left = times;
      const remove = intercept(method, () => {
        if (left <= 0) return undefined;
        left -= 1;
        if (left === 0) remove();
        return { operationError: error };
      });
    },
    nextRequest: () => new Promise<string>((resolve) => router.arrivals.push(resolve)),
    setWaitBound(ms) {
      coreOptions.waitBoundMs = ms;
    },
    async close() {
      core.operations.close();
      transitions.close();
      await server.close();
      if (ownsMachines) await machines.close();
    },
  };
}
