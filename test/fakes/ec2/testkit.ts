/** Helpers for tests that drive the EC2 fake with the real SDK client. */
import { EC2Client, type EC2ClientConfig } from '@aws-sdk/client-ec2';
import { generateKeyPairSync } from 'node:crypto';
import type { MachineBackend, MachineSpec } from '../common/machines.js';
import { startEc2Fake, type Ec2Fake, type Ec2FakeOptions } from './index.js';

export const CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'x' };

/** Waiter settings for a fake with millisecond transitions (seconds, as the SDK wants them). */
export const FAST_WAIT = { minDelay: 0.02, maxDelay: 0.1, maxWaitTime: 10 };

export function ec2Client(fake: Ec2Fake, region = 'us-east-1', config: Partial<EC2ClientConfig> = {}): EC2Client {
  return new EC2Client({ endpoint: fake.url, region, credentials: CREDENTIALS, maxAttempts: 1, ...config });
}

/** Small transition delays: long enough that transitional states are observable. */
export const SHORT_DELAYS = {
  'instance.running': 30,
  'instance.stopped': 30,
  'instance.terminated': 30,
  'snapshot.completed': 20,
  'image.available': 30,
};

export async function withFake(options: Ec2FakeOptions = {}): Promise<Ec2Fake> {
  return startEc2Fake({ delays: SHORT_DELAYS, ...options });
}

/** A fresh ed25519 public key in OpenSSH format. */
export function ed25519PublicKey(comment = 'kiln-test'): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'jwk' }).x as string;
  const key = Buffer.from(raw, 'base64url');
  const type = Buffer.from('ssh-ed25519');
  const blob = Buffer.concat([u32(type.length), type, u32(key.length), key]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** A promise and the function that resolves it. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Captures the error a promise rejects with (fails if it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<Error & { Code?: string; $metadata?: { httpStatusCode?: number } }> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** A machine backend that records every call (and can hold stopMachine until released). */
export class RecordingMachines implements MachineBackend {
  readonly log: string[] = [];
  /** While set, these calls wait for their gate's promise before resolving. */
  readonly gates: { start?: Promise<void>; stop?: Promise<void>; destroy?: Promise<void>; snapshot?: Promise<void> } = {};

  async createDisk(diskId: string, sizeGb: number, fromSnapshotId?: string): Promise<void> {
    this.log.push(`createDisk ${diskId} ${sizeGb} ${fromSnapshotId ?? '-'}`);
  }
  async deleteDisk(diskId: string): Promise<void> {
    this.log.push(`deleteDisk ${diskId}`);
  }
  async snapshotDisk(diskId: string, snapshotId: string): Promise<void> {
    this.log.push(`snapshotDisk ${diskId} ${snapshotId}`);
    await this.gates.snapshot;
  }
  async deleteSnapshot(snapshotId: string): Promise<void> {
    this.log.push(`deleteSnapshot ${snapshotId}`);
  }
  async startMachine(spec: MachineSpec): Promise<void> {
    this.log.push(`startMachine ${spec.id} ${spec.address} ${spec.sshUser} ${spec.cpus}/${spec.memoryMiB} ${spec.diskIds.join(',')}`);
    this.specs.push(spec);
    await this.gates.start;
  }
  async stopMachine(id: string): Promise<void> {
    this.log.push(`stopMachine ${id}`);
    await this.gates.stop;
  }
  async destroyMachine(id: string): Promise<void> {
    this.log.push(`destroyMachine ${id}`);
    await this.gates.destroy;
  }
  async consoleOutput(id: string): Promise<string> {
    return `Booting ${id}\nlogin: \n`;
  }
  async close(): Promise<void> {}
  readonly specs: MachineSpec[] = [];
}
