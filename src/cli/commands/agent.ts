// `b365 agent install` writes the agent's service and configuration; `b365 agent run`
// is the agent itself, in the foreground (what the service starts); `b365 agents`
// lists the agents the server knows.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { execa } from 'execa';
import { AgentApi } from '../../agent/api.js';
import { DEFAULT_AGENT_CONFIG, DEFAULT_AGENT_STATE, DEFAULT_CONFIG_DIRECTORY, readAgentConfig, readTokenFile } from '../../agent/config.js';
import { Agent } from '../../agent/daemon.js';
import { SERVICE_NAME, installAgent } from '../../agent/install.js';
import { clockFromEnvironment } from '../../clock.js';
import { ConflictError, UsageError, UserError } from '../../errors.js';
import { createLogger } from '../../log.js';
import { normalizeFingerprint } from '../../client/tls-pin.js';
import { agentInstallCommand } from '../agent-command.js';
import { clientFor, fingerprintOf, globals, resolveToken } from '../context.js';
import { printJson, printTable } from '../output.js';

interface InstallFlags {
  configDir: string;
  unitDir: string;
  stateDir: string;
  start: boolean;
  check: boolean;
}

export function registerAgent(program: Command): void {
  const agent = program.command('agent').description('the backup agent: install it as a service, or run it');

  agent
    .command('install')
    .description('write the agent service (systemd) and its configuration; needs --server and --token')
    .option('--config-dir <dir>', 'where the configuration and token go', DEFAULT_CONFIG_DIRECTORY)
    .option('--unit-dir <dir>', 'where the systemd unit goes', '/etc/systemd/system')
    .option('--state-dir <dir>', "the agent's working state", DEFAULT_AGENT_STATE)
    .option('--no-start', 'do not enable and start the service')
    .option('--no-check', 'do not ask the server whether the token works')
    .action(async (flags: InstallFlags, command: Command) => {
      const global = globals(command);
      if (!global.server) throw new UsageError('agent install needs --server URL');
      const fingerprintText = fingerprintOf(global);
      const fingerprint = fingerprintText ? normalizeFingerprint(fingerprintText) : undefined;
      const token = resolveToken(global);
      let machine: string | null = null;
      if (flags.check) {
        const api = new AgentApi(global.server, token, createLogger({ level: 'error' }), fingerprint);
        try {
          machine = (await api.policy()).machine;
        } finally {
          await api.close();
        }
      }
      const main = fileURLToPath(new URL('../main.js', import.meta.url));
      const files = await installAgent({ server: global.server, fingerprint, token, configDirectory: flags.configDir, unitDirectory: flags.unitDir, stateDirectory: flags.stateDir, command: [process.execPath, main] });
      process.stderr.write(`the agent's connection, to run it by hand or install it elsewhere:\n  ${agentInstallCommand(global.server, fingerprint ?? null, files.tokenFile)}\n`);
      let started = false;
      if (flags.start) {
        await execa('systemctl', ['daemon-reload']);
        await execa('systemctl', ['enable', '--now', SERVICE_NAME]);
        started = true;
      }
      if (global.json) printJson({ machine, ...files, started });
      else {
        process.stdout.write(`agent${machine ? ` for machine ${machine}` : ''} installed:\n  configuration ${files.config}\n  token ${files.tokenFile} (0600)\n  service ${files.unit}\n`);
        process.stdout.write(started ? `${SERVICE_NAME} is enabled and running\n` : `start it with: systemctl daemon-reload && systemctl enable --now ${SERVICE_NAME}\n`);
      }
    });

  agent
    .command('run')
    .description("run the agent in the foreground: follow this machine's policy until stopped")
    .option('--config <file>', `agent configuration (default ${DEFAULT_AGENT_CONFIG} when it exists)`)
    .option('--state-dir <dir>', "the agent's working state (sessions, cached policy, pending reports)")
    .option('--once', 'image now, report, and exit (exit code 0 if the run succeeded)')
    .option('--tick <ms>', 'how often the agent looks at its clock', '1000')
    .action(async (flags: { config?: string; stateDir?: string; once?: boolean; tick: string }, command: Command) => {
      const global = globals(command);
      const configFile = flags.config ?? (fs.existsSync(DEFAULT_AGENT_CONFIG) && !global.server ? DEFAULT_AGENT_CONFIG : null);
      const config = configFile ? readAgentConfig(configFile) : null;
      const server = global.server ?? process.env.B365_SERVER ?? config?.server;
      if (!server) throw new UsageError('no server: pass --server URL or --config FILE (see b365 agent install)');
      // A pin belongs to its server: the configuration's only when its server is the one used.
      const fingerprint = global.fingerprint ?? (config && server === config.server ? config.fingerprint : undefined) ?? fingerprintOf(global);
      const explicitToken = global.token ?? global.tokenFile ?? process.env.B365_TOKEN ?? process.env.B365_TOKEN_FILE;
      const token = explicitToken || !config ? resolveToken(global) : readTokenFile(config.tokenFile);
      const stateDirectory = flags.stateDir ?? config?.stateDirectory ?? process.env.B365_STATE_DIR ?? DEFAULT_AGENT_STATE;
      const log = createLogger({ level: global.logLevel ?? process.env.B365_LOG_LEVEL ?? 'info', name: 'b365-agent' });
      const daemon = new Agent({ server, token, fingerprint, stateDirectory, clock: clockFromEnvironment(), log, tickMs: Math.max(10, Number(flags.tick) || 1000) });
      const stop = () => daemon.stop();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        if (flags.once) {
          const report = await daemon.runOnce();
          if (!report) throw new ConflictError('another run is in progress; nothing was done');
          if (global.json) printJson(report);
          else process.stdout.write(`run ${report.id}: ${report.state}${report.image ? `, image ${report.image}` : ''}\n`);
          if (report.state !== 'ok') throw new UserError(`run ${report.id} failed: ${report.error ?? 'no reason given'}`);
          return;
        }
        await daemon.run();
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });

  program
    .command('agents')
    .description('agents the server knows and when each was last heard from')
    .action(async (_flags: unknown, command: Command) => {
      const client = await clientFor(command);
      try {
        const { agents } = await client.http.call<{ agents: { machine: string; hostname: string | null; version: string | null; state: string | null; lastHeartbeatAt: string; nextRunAt: string | null }[] }>('GET', '/agents');
        if (globals(command).json) printJson(agents);
        else printTable(agents, ['machine', 'hostname', 'state', 'lastHeartbeatAt', 'nextRunAt', 'version']);
      } finally {
        await client.close();
      }
    });
}
