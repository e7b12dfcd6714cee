/**
 * Long-running operations as ARM runs them, and as @azure/core-lro's pollers follow them:
 *
 *  - the initial response carries `Azure-AsyncOperation` (PUTs; DELETEs and POST actions too) and/or
 *    `Location` (DELETEs and POST actions; resource group delete has only `Location`);
 *  - `Azure-AsyncOperation` -> `/subscriptions/{s}/providers/{ns}/locations/{loc}/operations/{id}`
 *    answers 200 `{"name","status":"InProgress"|"Succeeded"|"Failed","startTime","endTime","error"}`;
 *  - `Location` -> `.../locations/{loc}/operationResults/{id}` (or `/subscriptions/{s}/operationresults/{id}`
 *    for resource groups) answers 202 while running, then 200 (with the result body if the
 *    operation has one), or the error's status and body if it failed.
 *
 * What the pollers then do (core-lro 2.x for network/resources, 3.x for compute): a PUT polls the
 * async URL and finally GETs the resource itself; a DELETE polls and stops; a POST action polls
 * the async URL and finally GETs the `Location` URL (compute actions use final-state-via location),
 * so the Location endpoint must answer 200 once the operation is done. A failed operation makes
 * the poller throw `Error("The long-running operation has failed. <code>. <message>")`.
 */
import { randomUUID } from 'node:crypto';
import { asArmError, type ArmError, type ArmErrorBody } from './errors.js';
import type { Reply } from './hooks.js';

export type OperationStatus = 'InProgress' | 'Succeeded' | 'Failed';

export interface OperationRecord {
  id: string;
  /** The step that names it (`vm.deallocate`...). */
  step: string;
  resourceId: string;
  namespace: string;
  location: string;
  apiVersion: string;
  status: OperationStatus;
  startTime: string;
  endTime?: string;
  error?: ArmErrorBody;
  errorStatus?: number;
  /** Body served by the Location endpoint once done (POST actions with a result). */
  result?: unknown;
}

export interface OperationStart {
  step: string;
  resourceId: string;
  namespace: string;
  location: string;
  apiVersion: string;
}

export class Operations {
  private readonly ops = new Map<string, OperationRecord>();

  constructor(
    private readonly baseUrl: () => string,
    private readonly subscriptionId: string,
    /** Retry-After (seconds) on LRO responses; unset by default so `updateIntervalInMs` governs. */
    private readonly retryAfterSeconds?: number,
  ) {}

  /**
   * Records an InProgress operation and runs `work` (which should start by waiting on a step, so
   * the response that started it still shows the transitional state). Its result ends the
   * operation; a throw fails it, after `onFailure` updated the resource.
   */
  run(start: OperationStart, work: () => Promise<unknown>, onFailure?: (err: ArmError) => void): OperationRecord {
    const op: OperationRecord = {
      ...start,
      location: start.location.toLowerCase().replace(/\s+/g, ''),
      id: randomUUID(),
      status: 'InProgress',
      startTime: new Date().toISOString(),
    };
    this.ops.set(op.id, op);
    void (async () => {
      try {
        const result = await work();
        if (result !== undefined) op.result = result;
        op.status = 'Succeeded';
      } catch (e) {
        const err = asArmError(e);
        op.status = 'Failed';
        op.error = err.toBody().error;
        op.errorStatus = err.status;
        try {
          onFailure?.(err);
        } catch (inner) {
          console.error('arm fake: onFailure threw', inner);
        }
      }
      op.endTime = new Date().toISOString();
    })();
    return op;
  }

  get(id: string): OperationRecord | undefined {
    return this.ops.get(id);
  }

  all(): OperationRecord[] {
    return [...this.ops.values()];
  }

  /** Headers for the response that started `op`. */
  headers(op: OperationRecord, style: { asyncOperation?: boolean; location?: boolean }): Record<string, string> {
    const headers: Record<string, string> = {};
    if (style.asyncOperation) headers['azure-asyncoperation'] = this.asyncOperationUrl(op);
    if (style.location) headers['location'] = this.locationUrl(op);
    if (this.retryAfterSeconds !== undefined) headers['retry-after'] = String(this.retryAfterSeconds);
    return headers;
  }

  asyncOperationUrl(op: OperationRecord): string {
    return `${this.baseUrl()}/subscriptions/${this.subscriptionId}/providers/${op.namespace}/locations/${op.location}/operations/${op.id}?api-version=${op.apiVersion}`;
  }

  locationUrl(op: OperationRecord): string {
    if (op.namespace === 'Microsoft.Resources') {
      return `${this.baseUrl()}/subscriptions/${this.subscriptionId}/operationresults/${op.id}?api-version=${op.apiVersion}`;
    }
    return `${this.baseUrl()}/subscriptions/${this.subscriptionId}/providers/${op.namespace}/locations/${op.location}/operationResults/${op.id}?api-version=${op.apiVersion}`;
  }

  /** The Azure-AsyncOperation endpoint. */
  statusReply(op: OperationRecord): Reply {
    const body: Record<string, unknown> = { name: op.id, status: op.status, startTime: op.startTime };
    if (op.endTime) body.endTime = op.endTime;
    if (op.error) body.error = op.error;
    const headers: Record<string, string> = {};
    if (op.status === 'InProgress' && this.retryAfterSeconds !== undefined) {
      headers['retry-after'] = String(this.retryAfterSeconds);
    }
    return { status: 200, body, headers };
  }

  /** The Location endpoint. */
  locationReply(op: OperationRecord): Reply {
    if (op.status === 'InProgress') {
      return { status: 202, headers: this.headers(op, { location: true }) };
    }
    if (op.status === 'Failed') {
      return { status: op.errorStatus ?? 500, body: { error: op.error } };
    }
    return op.result === undefined ? { status: 200 } : { status: 200, body: op.result };
  }
}
