// `b365 agent install` writes the agent's service and configuration; `b365 agent run`
// is the agent itself, in the foreground (what the service starts); `b365 agents`
// lists the agents the server knows.
import fs from 'node:fs';
import type { Command } from 'commander';
import { AgentApi } from '../../agent/api.js';
import {
  DEFAULT_AGENT_CONFIG,
  DEFAULT_AGENT_STATE,
  DEFAULT_CONFIG_DIRECTORY,
  chooseAgentToken,
  readAgentConfig,
} from '../../agent/config.js';
import { Agent, type AgentOptions } from '../../agent/daemon.js';
import { type InstalledFiles, SERVICE_NAME, installAgent } from '../../agent/install.js';
import { clockFromEnvironment } from '../../core/clock.js';
import { installedCommand } from '../../install/program.js';
import { DEFAULT_UNIT_DIRECTORY, enableService } from '../../install/systemd.js';
import { ConflictError, UsageError, UserError } from '../../core/errors.js';
import { createLogger } from '../../core/log.js';
import { normalizeFingerprint } from '../../client/tls-pin.js';
import { agentInstallCommand } from '../agent-command.js';
import { clientFor, fingerprintOf, globals, resolveToken } from '../context.js';
import { printJson, printTable } from '../output.js';
import { formatWhen, serverTimeFormat, type TimeFormat } from '../time-format.js';

interface InstallFlags {
  configDir: string;
  unitDir: string;
  stateDir: string;
  start: boolean;
  check: boolean;
  allowBuildTree?: boolean;
}

/** Who the token belongs to, asked of the server before anything is written. */
async function tokenMachine(server: string, token: string, fingerprint: string | undefined): Promise<string> {
  const api = new AgentApi(server, token, createLogger({ level: 'error' }), fingerprint);
  try {
    return (await api.policy()).machine;
  } finally {
    await api.close();
  }
}

function describeInstalled(files: InstalledFiles, machine: string | null): string {
  return `agent${machine ? ` for machine ${machine}` : ''} installed:\n  configuration ${files.config}\n  token ${files.tokenFile} (0600)\n  state ${files.stateDirectory} (0700)\n  service ${files.unit}\n`;
}

async function install(flags: InstallFlags, command: Command): Promise<void> {
  const global = globals(command);
  if (!global.server) throw new UsageError('agent install needs --server URL');
  const fingerprintText = fingerprintOf(global);
  const fingerprint = fingerprintText ? normalizeFingerprint(fingerprintText) : undefined;
  const token = resolveToken(global);
  const machine = flags.check ? await tokenMachine(global.server, token, fingerprint) : null;
  const program = installedCommand({ allowBuildTree: flags.allowBuildTree === true });
  const files = await installAgent({
    server: global.server,
    fingerprint,
    token,
    configDirectory: flags.configDir,
    unitDirectory: flags.unitDir,
    stateDirectory: flags.stateDir,
    command: program,
  });
  // What was written is said before systemd is asked, so a refusal there leaves no doubt about it.
  if (!global.json) process.stdout.write(describeInstalled(files, machine));
  process.stderr.write(
    `the agent's connection, to run it by hand or install it elsewhere:\n  ${agentInstallCommand(global.server, fingerprint ?? null, files.tokenFile)}\n`,
  );
  if (flags.start) await enableService(SERVICE_NAME);
  if (global.json) printJson({ machine, ...files, started: flags.start });
  else
    process.stdout.write(
      flags.start
        ? `${SERVICE_NAME} is enabled and running\n`
        : `start it with: systemctl daemon-reload && systemctl enable --now ${SERVICE_NAME}\n`,
    );
}

interface RunFlags {
  config?: string;
  stateDir?: string;
  once?: boolean;
  tick: string;
}

/** The agent's options from its flags, the environment and its configuration file, in that order. */
function agentOptions(flags: RunFlags, command: Command): AgentOptions {
  const global = globals(command);
  const configFile =
    flags.config ?? (fs.existsSync(DEFAULT_AGENT_CONFIG) && !global.server ? DEFAULT_AGENT_CONFIG : null);
  const config = configFile ? readAgentConfig(configFile) : null;
  const server = global.server ?? process.env.B365_SERVER ?? config?.server;
  if (!server) throw new UsageError('no server: pass --server URL or --config FILE (see b365 agent install)');
  // A pin belongs to its server: the configuration's only when its server is the one used.
  const fingerprint =
    global.fingerprint ??
    (config && server === config.server ? config.fingerprint : undefined) ??
    fingerprintOf(global);
  const { token, source: tokenSource, ignored } = chooseAgentToken(global, configFile, config);
  const stateDirectory = flags.stateDir ?? config?.stateDirectory ?? process.env.B365_STATE_DIR ?? DEFAULT_AGENT_STATE;
  const log = createLogger({ level: global.logLevel ?? process.env.B365_LOG_LEVEL ?? 'info', name: 'b365-agent' });
  log.info({ tokenSource }, `token from ${tokenSource}`);
  if (ignored) log.warn({ ignored }, `${ignored} is set but not used: the configuration's token wins`);
  const tickMs = Math.max(10, Number(flags.tick) || 1000);
  return { server, token, fingerprint, stateDirectory, clock: clockFromEnvironment(), log, tickMs };
}

/** `--once`: one run, its report printed; a run that did not succeed is an error. */
async function runOnce(daemon: Agent, json: boolean | undefined): Promise<void> {
  const report = await daemon.runOnce();
  if (!report) throw new ConflictError('another run is in progress; nothing was done');
  if (json) printJson(report);
  else process.stdout.write(`run ${report.id}: ${report.state}${report.image ? `, image ${report.image}` : ''}\n`);
  if (report.state !== 'ok') throw new UserError(`run ${report.id} failed: ${report.error ?? 'no reason given'}`);
}

async function runAgent(flags: RunFlags, command: Command): Promise<void> {
  const daemon = new Agent(agentOptions(flags, command));
  const stop = () => daemon.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    if (flags.once) await runOnce(daemon, globals(command).json);
    else await daemon.run();
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

export function registerAgent(program: Command): void {
  const agent = program.command('agent').description('the backup agent: install it as a service, or run it');

  agent
    .command('install')
    .description('write the agent service (systemd) and its configuration; needs --server and --token')
    .option(
      '--config-dir <dir>',
      'where the configuration and token go (relative paths are resolved against the current directory)',
      DEFAULT_CONFIG_DIRECTORY,
    )
    .option('--unit-dir <dir>', 'where the systemd unit goes', DEFAULT_UNIT_DIRECTORY)
    .option('--state-dir <dir>', "the agent's working state (made 0700)", DEFAULT_AGENT_STATE)
    .option('--no-start', 'do not enable and start the service')
    .option('--no-check', 'do not ask the server whether the token works')
    .option(
      '--allow-build-tree',
      'let the service run this copy of b365 even though it is a build tree (for trying a unit out)',
    )
    .action((flags: InstallFlags, command: Command) => install(flags, command));

  agent
    .command('run')
    .description("run the agent in the foreground: follow this machine's policy until stopped")
    .option('--config <file>', `agent configuration (default ${DEFAULT_AGENT_CONFIG} when it exists)`)
    .option('--state-dir <dir>', "the agent's working state (sessions, cached policy, pending reports)")
    .option('--once', 'image now, report, and exit (exit code 0 if the run succeeded)')
    .option('--tick <ms>', 'how often the agent looks at its clock', '1000')
    .action((flags: RunFlags, command: Command) => runAgent(flags, command));

  program
    .command('agents')
    .description(
      'agents the server knows: their state ("silent" when not heard from within the heartbeat timeout), when each was last heard from and runs next',
    )
    .action(async (_flags: unknown, command: Command) => {
      const client = await clientFor(command);
      try {
        const { agents } = await client.http.call<{ agents: AgentView[] }>('GET', '/agents');
        if (globals(command).json) printJson(agents);
        else printAgents(agents, await serverTimeFormat(client));
      } finally {
        await client.close();
      }
    });
}

interface AgentView {
  machine: string;
  hostname: string | null;
  version: string | null;
  state: string | null;
  lastHeartbeatAt: string;
  nextRunAt: string | null;
  /** Older servers do not say; then no agent is shown as silent. */
  silent?: boolean;
}

function printAgents(agents: AgentView[], times: TimeFormat): void {
  if (agents.length === 0) {
    process.stdout.write('no agent has reported yet\n');
    return;
  }
  printTable(
    agents.map((agent) => ({
      machine: agent.machine,
      host: agent.hostname,
      // A silent agent's last word is stale: say what it last said, in brackets.
      state: agent.silent ? `silent${agent.state ? ` (was ${agent.state})` : ''}` : agent.state,
      'last heard': formatWhen(agent.lastHeartbeatAt, times),
      'next run': agent.silent ? null : formatWhen(agent.nextRunAt, times),
      version: agent.version,
    })),
    ['machine', 'host', 'state', 'last heard', 'next run', 'version'],
  );
}
