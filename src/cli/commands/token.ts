// `b365 token create|list|revoke`: manage access tokens (admin).
import type { Command } from 'commander';
import { UsageError } from '../../core/errors.js';
import { agentInstallCommand } from '../agent-command.js';
import { clientFor, globals } from '../context.js';
import { printJson, printTable } from '../output.js';
import { parseDurationSeconds } from '../../core/duration.js';
import { formatWhen, serverTimeFormat } from '../time-format.js';

/** What the operator is told about a new token, on stderr (the secret is never repeated there). */
function tokenNotice(created: { id: number; role: string; machine: string | null; expiresAt: string | null }): string {
  const owner = created.machine ? ` for machine ${created.machine}` : '';
  const expiry = created.expiresAt ? `, valid until ${created.expiresAt}` : ', valid until revoked';
  return `${created.role} token ${created.id}${owner}${expiry}; shown once, keep it now`;
}

export function registerToken(program: Command): void {
  const token = program.command('token').description('manage access tokens (admin)');

  token
    .command('create')
    .usage('--role admin|machine|auditor [--machine NAME] [--label TEXT] [--ttl DURATION]')
    .description('create a token and print its secret (shown once)')
    .requiredOption('--role <role>', 'admin, machine or auditor')
    .option('--machine <name>', 'the machine a machine token belongs to')
    .option('--label <text>', 'a note to recognise the token by')
    .option('--ttl <duration>', 'expire after this long, like 30d')
    .action(async (options: { role: string; machine?: string; label?: string; ttl?: string }, command: Command) => {
      if (options.role === 'machine' && !options.machine) throw new UsageError('a machine token needs --machine NAME');
      const client = await clientFor(command);
      try {
        const created = await client.createToken({
          role: options.role,
          machine: options.machine,
          label: options.label,
          ttlSeconds: options.ttl !== undefined ? parseDurationSeconds(options.ttl, '--ttl') : undefined,
        });
        if (globals(command).json) return printJson(created);
        // The secret alone on stdout, so `TOKEN=$(b365 token create …)` holds just it;
        // everything said about it goes to stderr.
        process.stdout.write(`${created.token}\n`);
        process.stderr.write(`${tokenNotice(created)}\n`);
        if (options.role === 'machine') {
          const fingerprint =
            client.http.serverCertificate?.trustedByCa === false ? client.http.serverCertificate.fingerprint : null;
          process.stderr.write(
            `on machine ${options.machine}, install the agent with (paste the token when asked, so it stays out of shell history):\n  ${agentInstallCommand(client.server, fingerprint, '-')}\n`,
          );
        }
      } finally {
        await client.close();
      }
    });

  token
    .command('list')
    .description('list tokens (never their secrets)')
    .action(async (_options: unknown, command: Command) => {
      const client = await clientFor(command);
      try {
        const tokens = await client.listTokens();
        if (globals(command).json) return printJson({ tokens });
        const times = await serverTimeFormat(client);
        printTable(
          tokens.map((entry) => ({
            id: entry.id,
            role: entry.role,
            machine: entry.machine,
            label: entry.label,
            created: formatWhen(entry.createdAt, times),
            expires: formatWhen(entry.expiresAt, times),
            revoked: formatWhen(entry.revokedAt, times),
          })),
          ['id', 'role', 'machine', 'label', 'created', 'expires', 'revoked'],
        );
      } finally {
        await client.close();
      }
    });

  token
    .command('revoke')
    .description('revoke a token by id')
    .argument('<id>', 'token id from `b365 token list`')
    .action(async (id: string, _options: unknown, command: Command) => {
      const client = await clientFor(command);
      try {
        const revoked = await client.revokeToken(Number(id));
        if (globals(command).json) printJson({ revoked });
        else process.stdout.write(`revoked token ${revoked.id}\n`);
      } finally {
        await client.close();
      }
    });
}
