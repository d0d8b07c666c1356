// `b365 restore-code create|list|revoke`: codes an admin reads to a technician.
import type { Command } from 'commander';
import { assertMachineName } from '../../format/image-ref.js';
import { clientFor, globals } from '../context.js';
import { printJson, printTable } from '../output.js';
import { parseDurationSeconds } from '../../core/duration.js';
import { formatWhen, serverTimeFormat } from '../time-format.js';

export function registerRestoreCode(program: Command): void {
  const codes = program.command('restore-code').description('restore codes for technicians (admin)');

  codes
    .command('create')
    .usage('--machine NAME [--ttl DURATION] [--capture]')
    .description('create a code that lets a technician restore one machine, and print it')
    .requiredOption('--machine <name>', 'the machine whose images the code opens')
    .option('--ttl <duration>', 'how long the code is valid, like 4h or 2d', '4h')
    .option('--capture', 'also let the technician image the machine from the rescue USB')
    .action(async (options: { machine: string; ttl: string; capture?: boolean }, command: Command) => {
      const machine = assertMachineName(options.machine);
      const ttlSeconds = parseDurationSeconds(options.ttl, '--ttl');
      const client = await clientFor(command);
      try {
        const created = await client.createRestoreCode(machine, ttlSeconds, options.capture ?? false);
        if (globals(command).json) return printJson(created);
        // The code alone on stdout, so `CODE=$(b365 restore-code create …)` holds just it.
        process.stdout.write(`${created.code}\n`);
        process.stderr.write(
          `${created.capture ? 'restore and capture' : 'restore'} code for ${created.machine}, valid until ${created.expiresAt}; ` +
            `on the rescue USB the technician types it when asked, or runs b365 --restore-code CODE …\n`,
        );
      } finally {
        await client.close();
      }
    });

  codes
    .command('list')
    .description('list restore codes (never the codes themselves)')
    .action(async (_options: unknown, command: Command) => {
      const client = await clientFor(command);
      try {
        const list = await client.listRestoreCodes();
        if (globals(command).json) return printJson({ codes: list });
        const times = await serverTimeFormat(client);
        printTable(
          list.map((code) => ({
            id: code.id,
            machine: code.machine,
            created: formatWhen(code.createdAt, times),
            expires: formatWhen(code.expiresAt, times),
            revoked: formatWhen(code.revokedAt, times),
            uses: code.uses,
          })),
          ['id', 'machine', 'created', 'expires', 'revoked', 'uses'],
        );
      } finally {
        await client.close();
      }
    });

  codes
    .command('revoke')
    .description('revoke a code and the access it gave')
    .argument('<id>', 'code id from `b365 restore-code list`')
    .action(async (id: string, _options: unknown, command: Command) => {
      const client = await clientFor(command);
      try {
        const revoked = await client.revokeRestoreCode(Number(id));
        if (globals(command).json) printJson({ revoked });
        else process.stdout.write(`revoked restore code ${revoked.id} for ${revoked.machine}\n`);
      } finally {
        await client.close();
      }
    });
}
