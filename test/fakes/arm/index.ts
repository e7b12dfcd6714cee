/**
 * A wire-level fake of Azure Resource Manager for kiln's Azure driver tests: an HTTPS server on
 * 127.0.0.1 (ephemeral port, self-signed certificate) that the unmodified @azure/arm-resources 7,
 * @azure/arm-network 36 and @azure/arm-compute 24 clients talk to (see client-options.ts).
 *
 * What it models
 *  - ARM's front door: `/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}...`
 *    matched case-insensitively; a bearer token must be present; `api-version` is required
 *    (400 MissingApiVersionParameter) and must be one the resource type supports (400
 *    InvalidApiVersionParameter), including exactly those the installed SDKs send; ARM error
 *    bodies `{"error":{"code","message"}}`; DELETE of an absent resource is 204.
 *  - The long-running-operation protocol the SDK pollers follow (lro.ts): 201/200 +
 *    `Azure-AsyncOperation` for PUTs, 202 + `Azure-AsyncOperation` + `Location` for deletes and
 *    POST actions, `Location` only for resource group delete; status endpoints and the Location
 *    monitor (202 until done, then 200 / the error).
 *  - Resources: resource groups (create, get, checkExistence, list by tag, delete = purge of
 *    everything in it after a delay), `resources.list` with `$filter` by tag / type / name.
 *  - Network: virtual networks with inline subnets, subnets, NSGs with security rules (validated
 *    priority/direction/access/protocol), public IPs (ipAddress = a distinct loopback address),
 *    NICs referring to subnet/NSG/public IP; deleting anything still referred to fails
 *    (InUseSubnetCannotBeDeleted, InUseNetworkSecurityGroupCannotBeDeleted, PublicIPAddressInUse,
 *    NicInUse).
 *  - Compute: VMs (size, marketplace/managed-image/gallery image, OS + data disks with
 *    storageAccountType/size/deleteOption, existing disks attached (createOption Attach: 409
 *    ConflictingUserInput when attached elsewhere), an image's data disks that must all be listed
 *    FromImage once any data disk is (400 InvalidParameter), admin user + SSH key rules, NICs with
 *    deleteOption, tags), get with instanceView (PowerState/*, OSState/generalized), powerOff,
 *    deallocate, start, generalize (only when stopped/deallocated), delete; managed disks
 *    create (Empty, or FromImage of a managed image or gallery version, OS disk or data disk by lun)
 *    /get/list/delete (implicit disks untagged, managedBy, diskState); images from a generalized VM
 *    or from managed disks (snapshots of every disk);
 *    galleries, image definitions, image versions from a managed image or a VM, replicated per
 *    target region over time (`$expand=ReplicationStatus`), nested-resource delete protection.
 *  - Machines: every disk/VM side effect goes through a `MachineBackend` (NullMachines by default;
 *    QemuMachines for end-to-end runs, data disks at their LUN), wrapped to track what exists: createDisk (from the image snapshot,
 *    or `marketplace:publisher:offer:sku:version` for marketplace images), startMachine (admin user,
 *    first SSH key, the public IP's loopback address), stopMachine on powerOff/deallocate,
 *    snapshotDisk on image/version capture, destroyMachine/deleteDisk/deleteSnapshot on deletes.
 *  - Faults and timing: the shared FaultInjector (random 429 with Retry-After / 500 per request
 *    operation), `throttleNext`/`failNext` for deterministic ones, a delay per step (`ARM_STEPS`,
 *    via the shared Transitions) and interceptors per request operation or step (e.g. fail the
 *    replication of one region).
 *  - Inspection: `inventory()` lists every live resource by type plus the backend's disks,
 *    snapshots and machines; `requests` logs every call; `consoleOutput(vm)`.
 *
 * What it leaves out
 *  - Authentication beyond "a bearer token is there" (no AAD/MSAL endpoints; tests use a static
 *    TokenCredential), RBAC, policies, locks, quotas, subscriptions other than one, locations list.
 *  - PATCH updates (501 NotImplementedInFake), snapshot PUTs, disks copied, imported or uploaded,
 *    images from snapshots or blobs, VM resize/restart/reimage/capture/runCommand/extensions,
 *    attaching or detaching disks on an existing VM, VM scale sets,
 *    availability sets, zones, boot diagnostics, userData, spot.
 *  - Paging (every list is one page), ETags/If-Match, `x-ms-ratelimit-*` headers, long
 *    Retry-After on LROs (off by default so `updateIntervalInMs` rules), NIC reservations after
 *    VM delete, CIDR overlap checks, soft delete, sharing/community galleries, replica counts
 *    beyond echoing them, marketplace terms and plans.
 *  - Public IPs are never given back to the loopback pool (`LoopbackAddresses` has no release).
 */
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { FaultInjector, type FaultOptions } from '../common/faults.js';
import { LoopbackAddresses, NullMachines, type MachineBackend } from '../common/machines.js';
import { Transitions, type TransitionDelays } from '../common/transitions.js';
import { TrackedMachines, type BackendInventory } from './backend.js';
import { armClientSetup, type ArmClientSetup, type ArmClientSetupOptions } from './client-options.js';
import { ArmError, armErrors } from './errors.js';
import { Interceptors, Steps, type Interceptor } from './hooks.js';
import type { Core, ResourceKind, VmSize } from './kinds.js';
import { Operations } from './lro.js';
import { C, DEFAULT_VM_SIZES, type VmInternal } from './providers/compute-common.js';
import { diskKinds } from './providers/disks.js';
import { galleryKinds } from './providers/gallery.js';
import { interfaceKinds } from './providers/interfaces.js';
import { networkKinds } from './providers/network.js';
import { ResourceGroups } from './providers/resources.js';
import { vmKind } from './providers/vm.js';
import { createHandler, type RequestLogEntry } from './server.js';
import { ArmState } from './state.js';
import { selfSignedCert } from './tls.js';

export { ArmError, armErrors } from './errors.js';
export { ARM_STEPS, type ArmStep, type InterceptContext, type Interceptor, type Reply } from './hooks.js';
export { armClientSetup, staticTokenCredential, type ArmClientSetup } from './client-options.js';

export interface ArmFakeOptions {
  subscriptionId?: string;
  /** Disk and machine side effects; NullMachines (fast mode) by default. */
  machines?: MachineBackend;
  /** Pool of public IP addresses; share one between fakes whose machines share the host. */
  addresses?: LoopbackAddresses;
  /** Delay (ms) per step name in `ARM_STEPS`; 0 (next tick) by default. */
  delays?: TransitionDelays;
  /** Random faults per request operation. */
  faults?: FaultOptions;
  /** Retry-After (seconds) on injected 429s; default 1. */
  throttleRetryAfterSeconds?: number;
  /** Retry-After (seconds) on LRO responses; none by default. */
  lroRetryAfterSeconds?: number;
  /** When set, requests must carry exactly this bearer token. */
  token?: string;
  vmSizes?: Record<string, VmSize>;
  /** Marketplace images (`publisher:offer:sku`) that exist; any when unset. */
  knownImages?: string[];
}

export interface ArmInventory {
  /** Live resource ids by type, resource groups included. Empty when everything is gone. */
  resources: Record<string, string[]>;
  /** What the machine backend still holds. */
  backend: BackendInventory;
  /** Operations not finished yet. */
  operationsInProgress: number;
}

export interface ArmFake {
  /** e.g. https://127.0.0.1:41234 */
  url: string;
  subscriptionId: string;
  /** PEM certificate of the fake (trusted by `clientOptions().options.agent`). */
  ca: string;
  state: ArmState;
  faults: FaultInjector;
  transitions: Transitions;
  machines: TrackedMachines;
  operations: Operations;
  /** Every request served, in order. */
  requests: RequestLogEntry[];
  /** Credential, subscription, client options and poll options for the SDK clients. */
  clientOptions(opts?: ArmClientSetupOptions): ArmClientSetup;
  /** Interceptor for a request operation (`virtualMachines.deallocate`) or a step (`ARM_STEPS`). */
  intercept(name: string, fn: Interceptor): () => void;
  /** Answers the next `count` requests of operation `name` with `error`. */
  failNext(name: string, error: ArmError, count?: number): void;
  /** Answers the next `count` requests of operation `name` with 429 TooManyRequests. */
  throttleNext(name: string, count?: number, retryAfterSeconds?: number): void;
  inventory(): ArmInventory;
  /** Ids of every live resource group and resource, sorted. */
  liveResourceIds(): string[];
  /** Serial console of a VM, by name or id. */
  consoleOutput(vm: string): Promise<string>;
  close(): Promise<void>;
}

export async function startArmFake(options: ArmFakeOptions = {}): Promise<ArmFake> {
  const subscriptionId = options.subscriptionId ?? '00000000-0000-4000-8000-00000000c0de';
  const state = new ArmState(subscriptionId);
  const transitions = new Transitions(options.delays ?? {});
  const faults = new FaultInjector(options.faults ?? {});
  const interceptors = new Interceptors();
  const machines = new TrackedMachines(options.machines ?? new NullMachines());
  let url = '';
  const operations = new Operations(() => url, subscriptionId, options.lroRetryAfterSeconds);
  const kinds: ResourceKind[] = [];
  const core: Core = {
    state,
    ops: operations,
    steps: new Steps(transitions, interceptors),
    machines,
    addresses: options.addresses ?? new LoopbackAddresses(),
    vmSizes: options.vmSizes ?? DEFAULT_VM_SIZES,
    ...(options.knownImages ? { knownImages: options.knownImages } : {}),
    kind: (type) => kinds.find((k) => k.type.toLowerCase() === type.toLowerCase()),
  };
  kinds.push(...networkKinds(core), ...interfaceKinds(core), vmKind(core), ...diskKinds(core), ...galleryKinds(core));
  const requests: RequestLogEntry[] = [];
  const handler = createHandler({
    core,
    groups: new ResourceGroups(core),
    kinds,
    interceptors,
    faults,
    throttleRetryAfterSeconds: options.throttleRetryAfterSeconds ?? 1,
    ...(options.token !== undefined ? { token: options.token } : {}),
    log: requests,
  });

  const { cert, key } = selfSignedCert();
  const server = createServer({ cert, key }, (req, res) => {
    handler(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`arm fake error: ${err instanceof Error ? err.stack : String(err)}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const setups: ArmClientSetup[] = [];

  const fake: ArmFake = {
    url,
    subscriptionId,
    ca: cert,
    state,
    faults,
    transitions,
    machines,
    operations,
    requests,
    clientOptions: (opts = {}) => {
      const setup = armClientSetup({ url, ca: cert, subscriptionId }, { ...(options.token ? { token: options.token } : {}), ...opts });
      setups.push(setup);
      return setup;
    },
    intercept: (name, fn) => interceptors.add(name, fn),
    failNext: (name, error, count = 1) => {
      let left = count;
      const remove = interceptors.add(name, () => {
        if (left <= 0) return undefined;
        if (--left === 0) remove();
        return error;
      });
    },
    throttleNext: (name, count = 1, retryAfterSeconds = options.throttleRetryAfterSeconds ?? 1) =>
      fake.failNext(name, armErrors.tooManyRequests(retryAfterSeconds), count),
    inventory: () => ({
      resources: state.inventory(),
      backend: machines.inventory(),
      operationsInProgress: operations.all().filter((o) => o.status === 'InProgress').length,
    }),
    liveResourceIds: () => Object.values(state.inventory()).flat().sort(),
    consoleOutput: async (vm) => {
      const vms = state.list<VmInternal>({ type: C.vm });
      const match = vms.find((v) => v.id.toLowerCase() === vm.toLowerCase()) ?? vms.filter((v) => v.name.toLowerCase() === vm.toLowerCase())[0];
      if (!match) throw new Error(`arm fake: no VM ${vm}`);
      return machines.consoleOutput(match.internal.machineId);
    },
    close: async () => {
      transitions.close();
      for (const s of setups) s.options.agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (!options.machines) await machines.close();
    },
  };
  return fake;
}
