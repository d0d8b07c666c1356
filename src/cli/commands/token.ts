// `b365 token create|list|revoke`: manage access tokens (admin).
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { clientFor, globals } from '../context.js';
import { printJson, printTable } from '../output.js';
import { parseDuration } from '../parse.js';
import { formatWhen, serverTimeFormat } from '../time-format.js';

export function registerToken(program: Command): void {
  const token = program.command('token').description('manage access tokens (admin)');

  token
    .command('create')
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
          ttlSeconds: options.ttl ? Math.round(parseDuration(options.ttl) / 1000) : undefined,
        });
        if (globals(command).json) printJson(created);
        else process.stdout.write(`${created.token}\n`);
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
          tokens.map((entry) => ({ id: entry.id, role: entry.role, machine: entry.machine, label: entry.label, created: formatWhen(entry.createdAt, times), expires: formatWhen(entry.expiresAt, times), revoked: formatWhen(entry.revokedAt, times) })),
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
