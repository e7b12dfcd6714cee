/**
 * The asynchronous half of the EC2 state machines. Requests change a record to its transitional
 * state at once (pending, stopping, shutting-down, image pending) and hand the slow part to this
 * module: machine-backend calls, serialized per instance, followed by the configured transition
 * delay. A completion applies only if nothing changed the resource meanwhile (generation check).
 *
 * Transition names (delays in ms, via Transitions.setDelays):
 *   instance.running     pending -> running, after the disks are created and the machine started
 *   instance.stopped     stopping -> stopped, after the backend's stopMachine resolved
 *   instance.terminated  shutting-down -> terminated, after the machine and its disks are gone
 *   snapshot.completed   snapshot pending -> completed, after the backend's snapshotDisk
 *   image.available      image pending -> available, after all its snapshots completed
 *   volume.available     CreateVolume: creating -> available, after the backend's createDisk
 *   volume.attached      AttachVolume: attaching -> attached
 *   volume.detached      DetachVolume: detaching -> detached (the volume available again)
 */
import type { MachineSpec } from '../common/machines.js';
import type { ImageRecord, InstanceRecord, InstanceStateName, RegionState, SnapshotRecord } from './model.js';
import type { Ec2State } from './state.js';

const chains = new WeakMap<InstanceRecord, Promise<void>>();

/** Runs backend work for one instance after the work queued before it. */
function enqueue(state: Ec2State, instance: InstanceRecord, context: string, work: () => Promise<void>): void {
  const previous = chains.get(instance) ?? Promise.resolve();
  const next = previous.then(async () => {
    if (state.closed) return;
    try {
      await work();
    } catch (error) {
      state.recordBackendError(`${context} ${instance.id}`, error);
    }
  });
  chains.set(instance, next);
}

export function userInitiated(now = new Date()): string {
  return `User initiated (${now.toISOString().slice(0, 19).replace('T', ' ')} GMT)`;
}

export function setInstanceState(instance: InstanceRecord, next: InstanceStateName): void {
  instance.state = next;
  instance.generation++;
}

function afterDelay(
  state: Ec2State,
  name: string,
  instance: InstanceRecord,
  generation: number,
  apply: () => void,
): void {
  if (state.closed || instance.generation !== generation) return;
  state.transitions.schedule(name, () => {
    if (state.closed || instance.generation !== generation) return;
    apply();
  });
}

export function machineSpec(state: Ec2State, region: RegionState, instance: InstanceRecord): MachineSpec {
  const key = instance.keyName ? [...region.keyPairs.values()].find((k) => k.name === instance.keyName) : undefined;
  return {
    id: instance.id,
    diskIds: [...instance.volumeIds],
    sshUser: instance.sshUser,
    sshPublicKey: key?.publicKey ?? '',
    address: instance.publicIp ?? '',
    cpus: instance.cpus,
    memoryMiB: instance.memoryMiB,
    devices: Object.fromEntries(instance.volumeIds.map((volumeId) => [volumeId, { kind: 'ebs', volumeId }])),
  };
}

/** pending -> running for a new instance: create its disks, boot it. */
export function launch(state: Ec2State, region: RegionState, instance: InstanceRecord): void {
  const generation = instance.generation;
  instance.publicIp = state.loopback.allocate();
  enqueue(state, instance, 'launch', async () => {
    try {
      for (const volumeId of instance.volumeIds) {
        const volume = region.volumes.get(volumeId);
        if (volume) await state.machines.createDisk(volumeId, volume.size, volume.snapshotId);
      }
      if (instance.generation !== generation) return;
      await state.machines.startMachine(machineSpec(state, region, instance));
      instance.machineExists = true;
    } catch (error) {
      // As EC2 does with a launch that fails: the instance goes on to terminated.
      if (instance.generation === generation) {
        setInstanceState(instance, 'shutting-down');
        instance.stateReason = serverError(error);
        terminate(state, region, instance);
      }
      throw error;
    }
    afterDelay(state, 'instance.running', instance, generation, () => setInstanceState(instance, 'running'));
  });
}

function serverError(error: unknown): { code: string; message: string } {
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'Server.InternalError', message: `Server.InternalError: ${message}` };
}

/** stopped -> pending -> running. */
export function start(state: Ec2State, region: RegionState, instance: InstanceRecord): void {
  const generation = instance.generation;
  instance.publicIp = state.loopback.allocate();
  enqueue(state, instance, 'start', async () => {
    if (instance.generation !== generation) return;
    try {
      await state.machines.startMachine(machineSpec(state, region, instance));
    } catch (error) {
      // A start that fails leaves the instance stopped, with the reason.
      if (instance.generation === generation) {
        setInstanceState(instance, 'stopped');
        instance.publicIp = undefined;
        instance.stateReason = serverError(error);
      }
      throw error;
    }
    instance.machineExists = true;
    afterDelay(state, 'instance.running', instance, generation, () => setInstanceState(instance, 'running'));
  });
}

/** running -> stopping -> stopped (only once the backend's stopMachine resolved). */
export function stop(state: Ec2State, instance: InstanceRecord): void {
  const generation = instance.generation;
  enqueue(state, instance, 'stop', async () => {
    if (instance.generation !== generation) return;
    if (instance.machineExists) await state.machines.stopMachine(instance.id);
    afterDelay(state, 'instance.stopped', instance, generation, () => {
      setInstanceState(instance, 'stopped');
      instance.publicIp = undefined;
      instance.stateReason = {
        code: 'Client.UserInitiatedShutdown',
        message: 'Client.UserInitiatedShutdown: User initiated shutdown',
      };
    });
  });
}

/** -> shutting-down -> terminated: destroy the machine, delete DeleteOnTermination volumes. */
export function terminate(state: Ec2State, region: RegionState, instance: InstanceRecord): void {
  const generation = instance.generation;
  enqueue(state, instance, 'terminate', async () => {
    if (instance.machineExists) {
      await state.machines.destroyMachine(instance.id);
      instance.machineExists = false;
    }
    const doomed = instance.volumeIds.filter((id) => region.volumes.get(id)?.attachment?.deleteOnTermination);
    for (const volumeId of doomed) await state.machines.deleteDisk(volumeId);
    afterDelay(state, 'instance.terminated', instance, generation, () => {
      setInstanceState(instance, 'terminated');
      instance.publicIp = undefined;
      instance.stateReason ??= {
        code: 'Client.UserInitiatedShutdown',
        message: 'Client.UserInitiatedShutdown: User initiated shutdown',
      };
      for (const volumeId of instance.volumeIds) {
        const volume = region.volumes.get(volumeId);
        if (!volume) continue;
        if (volume.attachment?.deleteOnTermination) region.volumes.delete(volumeId);
        else {
          volume.attachment = undefined;
          volume.state = 'available';
        }
      }
    });
  });
}

function completeSnapshot(state: Ec2State, snapshot: SnapshotRecord): Promise<void> {
  return new Promise((resolve) => {
    if (state.closed) return;
    state.transitions.schedule('snapshot.completed', () => {
      if (snapshot.state === 'pending') snapshot.state = 'completed';
      resolve();
    });
  });
}

function imageAvailable(state: Ec2State, image: ImageRecord): void {
  if (state.closed) return;
  state.transitions.schedule('image.available', () => {
    if (image.state === 'pending') image.state = 'available';
  });
}

function imageFailed(image: ImageRecord, snapshots: SnapshotRecord[], error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  image.state = 'failed';
  image.stateReason = { code: 'Server.InternalError', message: `Server.InternalError: ${message}` };
  for (const s of snapshots) {
    if (s.state !== 'pending') continue;
    s.state = 'error';
    s.stateMessage = message;
  }
}

/**
 * CreateImage: snapshot every volume of the instance. A running instance is rebooted around the
 * snapshots (stop, snapshot, start) unless NoReboot was given.
 */
export function captureImage(
  state: Ec2State,
  region: RegionState,
  instance: InstanceRecord,
  image: ImageRecord,
  pairs: Array<{ volumeId: string; snapshot: SnapshotRecord }>,
  reboot: boolean,
): void {
  enqueue(state, instance, 'create-image', async () => {
    const snapshots = pairs.map((p) => p.snapshot);
    try {
      if (reboot && instance.machineExists) await state.machines.stopMachine(instance.id);
      const done: Array<Promise<void>> = [];
      for (const { volumeId, snapshot } of pairs) {
        await state.machines.snapshotDisk(volumeId, snapshot.id);
        done.push(completeSnapshot(state, snapshot));
      }
      if (reboot && instance.machineExists) {
        await state.machines.startMachine(machineSpec(state, region, instance));
      }
      await Promise.all(done);
      imageAvailable(state, image);
    } catch (error) {
      imageFailed(image, snapshots, error);
      throw error;
    }
  });
}

/** CopyImage: each snapshot is rebuilt in the destination via a scratch disk. */
export function copyImageSnapshots(
  state: Ec2State,
  image: ImageRecord,
  pairs: Array<{ sourceSnapshotId: string; size: number; snapshot: SnapshotRecord }>,
): void {
  void (async () => {
    try {
      const done: Array<Promise<void>> = [];
      for (const { sourceSnapshotId, size, snapshot } of pairs) {
        if (state.closed) return;
        const scratch = `copy-${snapshot.id}`;
        await state.machines.createDisk(scratch, size, sourceSnapshotId);
        await state.machines.snapshotDisk(scratch, snapshot.id);
        await state.machines.deleteDisk(scratch);
        done.push(completeSnapshot(state, snapshot));
      }
      await Promise.all(done);
      imageAvailable(state, image);
    } catch (error) {
      imageFailed(
        image,
        pairs.map((p) => p.snapshot),
        error,
      );
      state.recordBackendError(`copy-image ${image.id}`, error);
    }
  })();
}
