/**
 * A wire-level fake of the Amazon EC2 API for testing kiln's AWS driver with the unmodified
 * `@aws-sdk/client-ec2`. Start it with `startEc2Fake()`, point the SDK at `url` (client option
 * `endpoint`, or env `AWS_ENDPOINT_URL_EC2`) with any static credentials; the region is read from
 * each request's SigV4 credential scope, and every region is served at once.
 *
 * Models (per region, one account):
 * - Images: DescribeImages (Owners incl. self/amazon, ImageIds, ExecutableBy, filters with `*`/`?`
 *   wildcards, paging), CreateImage (from a running or stopped instance; new snapshots;
 *   pending -> available; running instances are rebooted unless NoReboot), DeregisterImage (with
 *   DeleteAssociatedSnapshots), CopyImage (in the destination region, from SourceRegion; ClientToken),
 *   Modify/DescribeImageAttribute (launchPermission group=all / userId, description,
 *   blockDeviceMapping), public base images (Amazon Linux 2023, Ubuntu) seeded in each region.
 * - Key pairs: ImportKeyPair (ed25519 and RSA OpenSSH keys, EC2's fingerprints), DescribeKeyPairs,
 *   DeleteKeyPair.
 * - A default VPC with a default subnet in each of three zones (`<region>a`, `b`, `c`) and the
 *   `default` security group per region; DescribeVpcs, DescribeSubnets.
 * - Security groups: Create, Authorize/RevokeSecurityGroupIngress, Describe, Delete (with
 *   DependencyViolation while a non-terminated instance uses the group).
 * - Instances: RunInstances (block device mappings incl. NoDevice, Placement.AvailabilityZone
 *   picking that zone's default subnet, tag specifications, ClientToken idempotency,
 *   Min/MaxCount), DescribeInstances, Stop/Start/TerminateInstances, GetConsoleOutput; the EC2
 *   state machine with codes; IncorrectInstanceState; optional InvalidInstanceID.NotFound window
 *   after launch.
 * - Volumes and snapshots: CreateVolume (blank or from a snapshot, in one zone; creating ->
 *   available; ClientToken), AttachVolume (InvalidVolume.ZoneMismatch, VolumeInUse, IncorrectState
 *   for a volume not available or an instance neither running nor stopped, a device in use;
 *   attaching -> attached, not DeleteOnTermination), DetachVolume (detaching -> available; the root
 *   volume only from a stopped instance), DescribeVolumes (attachmentSet), DeleteVolume
 *   (VolumeInUse while attached), DescribeSnapshots, DeleteSnapshot. Terminating an instance
 *   deletes its DeleteOnTermination volumes and leaves the others available.
 * - Tags: CreateTags, DeleteTags, DescribeTags on every modelled resource.
 * - Faults (FaultInjector), transition delays (Transitions, names in lifecycle.ts), interceptors.
 * - Side effects on disks and machines through a MachineBackend (NullMachines by default;
 *   QemuMachines end to end, every volume an NVMe disk with its volume id as serial).
 *
 * Leaves out: signature verification, multiple accounts (sharing is recorded, not enforced across
 * accounts), IAM, quotas, instance store, ENIs/EIPs beyond the one primary interface, IPv6, egress
 * rule changes, CreateSnapshot/CopySnapshot, ModifyVolume, hotplug (a volume attached to a running
 * machine reaches the machine backend at its next start), Spot, launch templates,
 * user data (accepted and ignored), deprecation/disable of images, and KMS key validation.
 * Terminated instances stay visible in DescribeInstances for the life of the fake.
 */
import { FaultInjector, type FaultOptions } from '../common/faults.js';
import { listenOnLoopback } from '../common/http.js';
import { Transitions, type TransitionDelays } from '../common/transitions.js';
import type { ActionHandler } from './actions/common.js';
import { imageActions } from './actions/images.js';
import { instanceActions } from './actions/instances.js';
import { keyPairActions } from './actions/keypairs.js';
import { networkActions } from './actions/network.js';
import { storageActions } from './actions/storage.js';
import { volumeActions } from './actions/volumes.js';
import { tagActions } from './actions/tags.js';
import { Ec2Error } from './errors.js';
import { Ec2Server, type CallRecord, type Interceptor } from './server.js';
import { Ec2State, type Ec2StateOptions } from './state.js';

export { Ec2Error } from './errors.js';
export { AMAZON_OWNER, CANONICAL_OWNER, baseImageCatalog, type SeedImageSpec } from './seed.js';
export type { Ec2State, LiveResources } from './state.js';
export type { CallRecord, Interception, Interceptor, Verdict } from './server.js';

export const ACTIONS: Record<string, ActionHandler> = {
  ...imageActions,
  ...keyPairActions,
  ...networkActions,
  ...instanceActions,
  ...storageActions,
  ...volumeActions,
  ...tagActions,
};

export interface Ec2FakeOptions extends Omit<Ec2StateOptions, 'transitions'> {
  faults?: FaultOptions;
  /** Transition delays in ms by name (see lifecycle.ts); all 0 by default. */
  delays?: TransitionDelays;
}

export interface Ec2Fake {
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  state: Ec2State;
  faults: FaultInjector;
  transitions: Transitions;
  /** Every request answered, in order. */
  calls: CallRecord[];
  /** Bugs in the fake surfaced as InternalError; tests should expect this to stay empty. */
  unexpectedErrors: unknown[];
  /** Adds an interceptor; returns a function removing it. */
  intercept(interceptor: Interceptor): () => void;
  /**
   * Makes the nth call (1-based, counting calls that were not fault-injected) of an action fail.
   * With `after`, the call takes effect first and only its response is an error (a lost response).
   */
  failCall(action: string, nth: number, code: string, options?: { message?: string; after?: boolean }): () => void;
  close(): Promise<void>;
}

export async function startEc2Fake(options: Ec2FakeOptions = {}): Promise<Ec2Fake> {
  const transitions = new Transitions(options.delays ?? {});
  const faults = new FaultInjector(options.faults ?? {});
  const state = new Ec2State({ ...options, transitions });
  const server = new Ec2Server(state, faults, ACTIONS);
  const running = await listenOnLoopback(server.handle);
  const intercept = (interceptor: Interceptor) => {
    server.interceptors.push(interceptor);
    return () => {
      const at = server.interceptors.indexOf(interceptor);
      if (at >= 0) server.interceptors.splice(at, 1);
    };
  };
  return {
    url: running.url,
    state,
    faults,
    transitions,
    calls: server.calls,
    unexpectedErrors: server.unexpectedErrors,
    intercept,
    failCall: (action, nth, code, { message, after = false } = {}) =>
      intercept((call) => {
        if (call.action !== action || call.nth !== nth) return undefined;
        const error = new Ec2Error(code, message ?? `Injected failure of ${action} call ${nth}`);
        return after ? { error, after: true } : error;
      }),
    close: async () => {
      state.closed = true;
      transitions.close();
      await running.close();
    },
  };
}
