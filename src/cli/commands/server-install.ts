// `b365 server install`: writes the hardened backup365-server.service, creates the
// system user it runs as, and enables it where systemd runs (src/install/server-unit.ts).
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { execa } from 'execa';
import { UsageError, UserError } from '../../core/errors.js';
import { installedCommand } from '../../install/program.js';
import {
  DEFAULT_INSTALLED_LISTEN,
  DEFAULT_INSTALLED_REPO,
  SERVER_SERVICE,
  SERVER_STATE_DIRECTORY,
  SERVER_USER,
  serverUnit,
  writeServerUnit,
} from '../../install/server-unit.js';
import { ensureSystemUser, systemUserExists } from '../../install/system-user.js';
import { DEFAULT_UNIT_DIRECTORY, enableService } from '../../install/systemd.js';
import { globals } from '../context.js';
import { printJson } from '../output.js';

interface ServerInstallFlags {
  repo: string;
  listen: string;
  config?: string;
  user: string;
  unitDir: string;
  print?: boolean;
  createUser: boolean;
  start: boolean;
  allowBuildTree?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsName: string[];
}

async function serverCommand(allowBuildTree: boolean): Promise<string[]> {
  const [node, main] = installedCommand({ allowBuildTree });
  // Loaded only here: the heap options the server is always started with.
  const { SERVER_NODE_OPTIONS } = await import('../../../server/main.js');
  return [node!, ...SERVER_NODE_OPTIONS, main!];
}

/** A repository outside the state directory is created for the service user, who alone may read it. */
async function prepareRepository(repo: string, user: string): Promise<void> {
  if (repo === SERVER_STATE_DIRECTORY || repo.startsWith(`${SERVER_STATE_DIRECTORY}/`)) return;
  await fs.mkdir(repo, { recursive: true, mode: 0o700 });
  await fs.chmod(repo, 0o700);
  if (!(await systemUserExists(user))) return;
  const result = await execa('chown', [`${user}:${user}`, repo], { reject: false });
  if (result.exitCode !== 0) throw new UserError(`cannot give ${repo} to ${user}: ${String(result.stderr).trim()}`);
}

async function install(flags: ServerInstallFlags, command: Command): Promise<void> {
  const repo = path.resolve(flags.repo);
  const config = flags.config ? path.resolve(flags.config) : null;
  const unitDirectory = path.resolve(flags.unitDir);
  if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey)) throw new UsageError('--tls-cert and --tls-key go together');
  const tls = {
    cert: flags.tlsCert && path.resolve(flags.tlsCert),
    key: flags.tlsKey && path.resolve(flags.tlsKey),
    names: flags.tlsName,
  };
  const plan = {
    command: await serverCommand(flags.allowBuildTree === true),
    user: flags.user,
    repo,
    listen: flags.listen,
    config,
    tls,
    unitDirectory,
  };
  if (flags.print) {
    process.stdout.write(serverUnit(plan));
    return;
  }
  const userCreated = flags.createUser ? await ensureSystemUser(flags.user, SERVER_STATE_DIRECTORY) : false;
  await prepareRepository(repo, flags.user);
  const unit = await writeServerUnit(plan);
  const json = globals(command).json === true;
  if (!json) {
    process.stdout.write(
      `server service written: ${unit}\n  runs ${plan.command.join(' ')}\n  as user ${flags.user}${userCreated ? ' (created now)' : ''}, repository ${repo}, listening on ${flags.listen}\n`,
    );
    if (config) process.stdout.write(`  configuration ${config} (must be readable by ${flags.user})\n`);
  }
  if (flags.start) await enableService(SERVER_SERVICE);
  if (json)
    printJson({ unit, user: flags.user, userCreated, repo, listen: flags.listen, config, started: flags.start });
  else
    process.stdout.write(
      flags.start
        ? `${SERVER_SERVICE} is enabled and running\n`
        : `start it with: systemctl daemon-reload && systemctl enable --now ${SERVER_SERVICE}\n`,
    );
}

export function registerServerInstall(server: Command): void {
  server
    .command('install')
    .description(`write the hardened systemd service ${SERVER_SERVICE}, create its system user, enable and start it`)
    .option(
      '--repo <dir>',
      'repository directory (absolute; a relative one is resolved against the current directory)',
      DEFAULT_INSTALLED_REPO,
    )
    .option('--listen <host:port>', 'address the service listens on', DEFAULT_INSTALLED_LISTEN)
    .option('--config <file>', 'server configuration file the service reads (docs/server-config.md)')
    .option(
      '--tls-cert <file>',
      'serve this certificate (PEM, chain allowed) instead of the self-signed one; readable by the service user',
    )
    .option('--tls-key <file>', 'the key of --tls-cert')
    .option(
      '--tls-name <name>',
      'a further DNS name or IP address for the self-signed certificate (repeatable)',
      (name: string, names: string[]) => [...names, name],
      [] as string[],
    )
    .option('--user <name>', 'system user the service runs as', SERVER_USER)
    .option('--unit-dir <dir>', 'where the unit file goes', DEFAULT_UNIT_DIRECTORY)
    .option('--print', 'print the unit on stdout and change nothing')
    .option('--no-create-user', 'do not create the system user (it must exist)')
    .option('--no-start', 'do not enable and start the service')
    .option(
      '--allow-build-tree',
      'let the service run this copy of b365 even though it is a build tree (for trying a unit out)',
    )
    .action((flags: ServerInstallFlags, command: Command) => install(flags, command));
}
