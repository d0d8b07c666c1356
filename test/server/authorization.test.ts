// Every role against every operation of the OpenAPI document: a role the document does
// not list is refused (401 without a token, 403 with one), a role it lists gets past
// authorization (whatever the placeholder arguments then earn it).
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { operations } from '../../server/openapi.js';
import { api } from '../helpers/api.js';
import { startServer } from '../helpers/server.js';

type Role = 'none' | 'restore' | 'auditor' | 'machine' | 'admin';
/** Admin last: what it may do (prune, gc, deleting policies) must not change the others' answers. */
const ROLES: Role[] = ['none', 'restore', 'auditor', 'machine', 'admin'];

function concrete(path: string): string {
  const id = path.startsWith('/sessions')
    ? randomUUID()
    : /^\/(tokens|restore-codes)\//.test(path)
      ? '999999'
      : path.startsWith('/images')
        ? 'alpha@latest'
        : 'probe-1';
  return path
    .replace('{id}', id)
    .replace('{digest}', 'a'.repeat(64))
    .replace('{machine}', 'alpha')
    .replace('{name}', 'alpha')
    .replace('{volume}', '1')
    .replace('{path}', 'etc');
}

t.test('authorization matrix', async (t) => {
  const server = await startServer(t);
  const admin = server.adminToken;
  const tokenFor = async (json: Record<string, unknown>) =>
    (await api(server.url, 'POST', '/tokens', { token: admin, json })).body.token as string;
  const machine = await tokenFor({ role: 'machine', machine: 'alpha' });
  const auditor = await tokenFor({ role: 'auditor' });
  const code = (await api(server.url, 'POST', '/restore-codes', { token: admin, json: { machine: 'alpha' } })).body
    .code as string;
  const restore = (await api(server.url, 'POST', '/restore-codes/exchange', { json: { code } })).body.token as string;
  const tokens: Record<Role, string | null> = { none: null, restore, auditor, machine, admin };

  for (const role of ROLES) {
    for (const operation of operations) {
      const path = concrete(operation.path);
      const allowed = operation.public === true || (operation.roles as string[]).includes(role);
      const answer = await api(server.url, operation.method.toUpperCase(), path, {
        token: tokens[role],
        json: operation.body ? {} : undefined,
      });
      const what = `${role} ${operation.method.toUpperCase()} ${operation.path}`;
      if (allowed)
        t.notOk([401, 403].includes(answer.status), `${what}: allowed (${answer.status} ${answer.body?.code ?? ''})`);
      else
        t.equal(
          answer.status,
          role === 'none' ? 401 : 403,
          `${what}: refused (${answer.status} ${answer.body?.message ?? ''})`,
        );
    }
  }
});
