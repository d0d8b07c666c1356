// Every operation of /api/v1, in the order the document lists them. A route the server
// serves must be here (a test walks the Express routes and compares).
import { accessOperations } from './access.js';
import { jobOperations } from './jobs.js';
import type { Operation } from './operation.js';
import { scheduleOperations } from './schedules.js';
import { storageOperations } from './storage.js';

export const operations: Operation[] = [
  ...accessOperations,
  ...storageOperations,
  ...jobOperations,
  ...scheduleOperations,
];

const byId = new Map(operations.map((operation) => [operation.operationId, operation]));

export function operation(operationId: string): Operation {
  const found = byId.get(operationId);
  if (!found) throw new Error(`no operation ${operationId} in server/api-schemas`);
  return found;
}
