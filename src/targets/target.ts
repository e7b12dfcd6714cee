/**
 * The interface every target implements. The pipeline calls these in order; each method creates at
 * most a few kinds of resource and records every one through ctx.resources before going on, so that
 * `destroy` can delete it later, from this process or from `kiln cleanup` in another one.
 */
import type { TargetName } from '../definition/schema.js';
import type { LedgerEntry } from '../pipeline/ledger.js';
import type { BuildContext } from '../pipeline/context.js';

export interface SshAccess {
  host: string;
  port: number;
  username: string;
  privateKey: string;
  /** Host keys the VM must present (OpenSSH lines or SHA256 fingerprints); empty = cannot verify. */
  hostKeys: string[];
}

/** One thing a build produced: an image in a region, a file, a gallery version. */
export interface Artifact {
  kind: string;
  id: string;
  name?: string;
  region?: string;
  /** Which disk it holds, where a target makes one image per disk. */
  disk?: 'root' | 'data' | 'both';
  format?: string;
  path?: string;
  sizeBytes?: number;
  sha256?: string;
}

export interface TargetDriver {
  readonly name: TargetName;
  /** Finds the base image and creates temporary access (SSH key, network rule). */
  prepare(ctx: BuildContext): Promise<void>;
  /** Launches the build VM with its root and data disks. */
  launch(ctx: BuildContext): Promise<void>;
  /** How to reach the VM over SSH once launched. */
  sshAccess(ctx: BuildContext): Promise<SshAccess>;
  /** Values for the plan's runtimeEnv (e.g. the data volume's id), known only after launch. */
  runtimeEnv(ctx: BuildContext): Promise<Record<string, string>>;
  /** Shuts the VM down cleanly (then forcibly after a deadline). */
  stop(ctx: BuildContext): Promise<void>;
  /** Captures images from the stopped VM's disks. */
  capture(ctx: BuildContext): Promise<Artifact[]>;
  /** Copies and shares the captured images as the plan says; returns every artifact to report. */
  publish(ctx: BuildContext, captured: Artifact[]): Promise<Artifact[]>;
  /**
   * Launches an instance from the captured images as a customer would, for `kiln validate`: the
   * image's own data disk, or the one given. Records every resource through ctx.resources (undo
   * deletes them). Targets without it cannot validate yet.
   */
  launchInstance?(ctx: BuildContext, images: Artifact[], options: InstanceOptions): Promise<SshAccess>;
  /**
   * `--on-error abort`: what the build runs must outlive this process, for debugging and for
   * `--resume`. Only a target whose VM is a child of kiln (local) needs to do anything.
   */
  keepAfterExit?(ctx: BuildContext): void;
  /** Deletes one recorded resource. Idempotent: a resource already gone is success. */
  destroy(entry: LedgerEntry, options: DestroyOptions): Promise<void>;
  /**
   * Every resource in the account that carries kiln's tags, for `kiln cleanup --sweep` (finds what
   * runs on lost machines left behind). Targets whose resources all live on this machine omit it.
   */
  listTagged?(options: { signal: AbortSignal }): Promise<TaggedResource[]>;
}

/** A resource found by its kiln tags: enough to delete it like a ledger entry. */
export interface TaggedResource extends Omit<LedgerEntry, 'seq' | 'createdAt' | 'role'> {
  id: string;
  runId: string;
  /** When the cloud says it was created (ISO 8601), if it says. */
  createdAt?: string;
}

export interface InstanceOptions {
  /** Authorized for the plan's SSH user; the only key the instance may accept. */
  publicKey: string;
  privateKey: string;
  /** An existing data disk to attach instead of the image's own (target-specific reference). */
  dataDisk?: string;
}

export interface DestroyOptions {
  log: (line: string) => void;
  signal: AbortSignal;
}
