/**
 * Sharing a gallery image version with its readers: one RBAC "Reader" role assignment per principal,
 * scoped to the version this build made (so undo after a failure can never unshare an older one).
 * @azure/arm-authorization is not a dependency; the assignment is a plain ARM resource, written with
 * the generic resources client. Its name is a GUID derived from scope and principal, so a retried
 * publish writes the same assignment again.
 */
import { arm } from './errors.js';
import { KIND, parseId, roleAssignmentId, roleDefinitionId, stableGuid, READER_ROLE } from './ids.js';
import type { AzureClients, CallOptions } from './clients.js';
import type { AzureStep } from './step.js';

export const ROLE_ASSIGNMENT_API_VERSION = '2022-04-01';

export async function shareWithReaders(s: AzureStep, scope: string, readers: string[]): Promise<string[]> {
  const ids: string[] = [];
  for (const principal of readers) {
    const name = stableGuid(scope, principal, READER_ROLE);
    const id = roleAssignmentId(scope, name);
    await s.record(
      KIND.roleAssignment,
      name,
      async () => {
        await arm(`granting Reader to ${principal}`, id, () =>
          s.c.resources.resources.beginCreateOrUpdateByIdAndWait(pathOf(id), ROLE_ASSIGNMENT_API_VERSION, { properties: { roleDefinitionId: roleDefinitionId(s.c.subscription), principalId: principal } }, s.call),
        );
        return { id };
      },
      { role: 'artifact', group: parseId(scope)?.group ?? s.group, extra: { scope, principal } },
    );
    s.log(`${principal} may read ${scope}`);
    ids.push(id);
  }
  return ids;
}

export async function deleteRoleAssignment(c: AzureClients, id: string, call: CallOptions): Promise<void> {
  await c.resources.resources.beginDeleteByIdAndWait(pathOf(id), ROLE_ASSIGNMENT_API_VERSION, call);
}

/** The generic client puts the id after "{host}/"; without this a documented "/subscriptions/..." id makes "//". */
function pathOf(id: string): string {
  return id.replace(/^\/+/, '');
}
