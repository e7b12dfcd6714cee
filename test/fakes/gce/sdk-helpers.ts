/**
 * Test helpers for driving the GCE fake with the real `@google-cloud/compute` clients: one client
 * per service, waiting on an operation through the `/wait` endpoints, reading the API error out of
 * what the SDK throws, and a MachineBackend that records its calls.
 */
import {
  DisksClient,
  FirewallsClient,
  GlobalOperationsClient,
  ImagesClient,
  InstancesClient,
  ZoneOperationsClient,
  type protos,
} from '@google-cloud/compute';
import { waitFor, done, notYet } from '../../../src/core/wait.js';
import type { MachineBackend, MachineSpec } from '../common/machines.js';
import type { GceFake } from './index.js';

export type Operation = protos.google.cloud.compute.v1.IOperation;

export interface ComputeClients {
  instances: InstancesClient;
  images: ImagesClient;
  disks: DisksClient;
  firewalls: FirewallsClient;
  zoneOperations: ZoneOperationsClient;
  globalOperations: GlobalOperationsClient;
  close(): Promise<void>;
}

export function computeClients(fake: GceFake): ComputeClients {
  const clients = {
    instances: new InstancesClient(fake.clientOptions()),
    images: new ImagesClient(fake.clientOptions()),
    disks: new DisksClient(fake.clientOptions()),
    firewalls: new FirewallsClient(fake.clientOptions()),
    zoneOperations: new ZoneOperationsClient(fake.clientOptions()),
    globalOperations: new GlobalOperationsClient(fake.clientOptions()),
  };
  return {
    ...clients,
    close: async () => {
      await Promise.all(Object.values(clients).map((c) => c.close()));
    },
  };
}

/** The Operation a mutating call returned (the SDK wraps it as `latestResponse`). */
export const operationOf = (result: readonly [{ latestResponse: unknown }, ...unknown[]]): Operation =>
  result[0].latestResponse as Operation;

const lastSegment = (url: string | null | undefined) => (url ?? '').split('/').pop() ?? '';

/** Calls zoneOperations.wait / globalOperations.wait until the operation is DONE. */
export async function untilDone(clients: ComputeClients, project: string, op: Operation): Promise<Operation> {
  return waitFor(
    async () => {
      const request = { project, operation: String(op.name) };
      const [current] = op.zone
        ? await clients.zoneOperations.wait({ ...request, zone: lastSegment(op.zone) })
        : await clients.globalOperations.wait(request);
      return current.status === 'DONE' ? done(current) : notYet(current.status);
    },
    { what: `operation ${op.name}`, timeoutMs: 10_000, initialDelayMs: 1 },
  );
}

/** Polls `read` until `accept` holds (no fixed sleeps). */
export function until<T>(read: () => Promise<T>, accept: (value: T) => boolean, what: string): Promise<T> {
  return waitFor(
    async () => {
      const value = await read();
      return accept(value) ? done(value) : notYet(value);
    },
    { what, timeoutMs: 10_000, initialDelayMs: 2, maxDelayMs: 50 },
  );
}

export interface ApiError {
  /** HTTP status (the SDK's GaxiosError carries it as `status` and `code`). */
  status: number;
  reason: string;
  message: string;
  body: { error: { code: number; message: string; status?: string; errors: { reason: string; domain: string }[] } };
}

/** Runs `call`, expects it to throw, and returns the API error the SDK surfaced. */
export async function apiErrorOf(call: () => Promise<unknown>): Promise<ApiError> {
  try {
    await call();
  } catch (err) {
    const e = err as { status?: number; code?: unknown; message: string };
    const body = JSON.parse(e.message) as ApiError['body'];
    return { status: Number(e.status), reason: body.error.errors[0]?.reason ?? '', message: body.error.message, body };
  }
  throw new Error('expected the call to fail');
}

export type MachineCall =
  | { op: 'createDisk'; diskId: string; sizeGb: number; fromSnapshotId?: string }
  | { op: 'deleteDisk'; diskId: string }
  | { op: 'snapshotDisk'; diskId: string; snapshotId: string }
  | { op: 'deleteSnapshot'; snapshotId: string }
  | { op: 'startMachine'; spec: MachineSpec }
  | { op: 'stopMachine' | 'destroyMachine'; id: string };

/**
 * A fast MachineBackend that records calls; `holdStops` makes stopMachine wait until
 * `releaseStops()`, and `holdSnapshots` makes snapshotDisk wait until `releaseSnapshots()`, so a
 * test observes a transitional state without racing the fake's timers.
 */
export class RecordingMachines implements MachineBackend {
  readonly calls: MachineCall[] = [];
  holdStops = false;
  holdSnapshots = false;
  private held: (() => void)[] = [];
  private heldSnapshots: (() => void)[] = [];

  async createDisk(diskId: string, sizeGb: number, fromSnapshotId?: string): Promise<void> {
    this.calls.push({ op: 'createDisk', diskId, sizeGb, fromSnapshotId });
  }
  async deleteDisk(diskId: string): Promise<void> {
    this.calls.push({ op: 'deleteDisk', diskId });
  }
  async snapshotDisk(diskId: string, snapshotId: string): Promise<void> {
    this.calls.push({ op: 'snapshotDisk', diskId, snapshotId });
    if (this.holdSnapshots) await new Promise<void>((resolve) => this.heldSnapshots.push(resolve));
  }
  async deleteSnapshot(snapshotId: string): Promise<void> {
    this.calls.push({ op: 'deleteSnapshot', snapshotId });
  }
  async startMachine(spec: MachineSpec): Promise<void> {
    this.calls.push({ op: 'startMachine', spec });
  }
  async stopMachine(id: string): Promise<void> {
    this.calls.push({ op: 'stopMachine', id });
    if (this.holdStops) await new Promise<void>((resolve) => this.held.push(resolve));
  }
  async destroyMachine(id: string): Promise<void> {
    this.calls.push({ op: 'destroyMachine', id });
  }
  async consoleOutput(id: string): Promise<string> {
    return `fake console of ${id}\n`;
  }
  async close(): Promise<void> {}
  releaseStops(): void {
    for (const release of this.held.splice(0)) release();
  }
  releaseSnapshots(): void {
    this.holdSnapshots = false;
    for (const release of this.heldSnapshots.splice(0)) release();
  }
  ops(): string[] {
    return this.calls.map((c) => c.op);
  }
}
