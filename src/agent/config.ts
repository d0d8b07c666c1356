// The agent's own configuration file (written by `b365 agent install`): which server,
// where the token is, where it keeps its state. What to image and when comes from the
// server's policy, not from here.
import fs from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { normalizeFingerprint } from '../client/tls-pin.js';
import { FormatError, UsageError } from '../core/errors.js';

export const DEFAULT_CONFIG_DIRECTORY = '/etc/backup365';
export const DEFAULT_AGENT_CONFIG = path.join(DEFAULT_CONFIG_DIRECTORY, 'agent.json');
/**
 * Not /var/lib/backup365: that is the server's StateDirectory, owned by its user with mode
 * 0700, and the agent's root has no CAP_DAC_OVERRIDE to write there when both share a machine.
 */
export const DEFAULT_AGENT_STATE = '/var/lib/backup365-agent';

export interface AgentConfig {
  server: string;
  tokenFile: string;
  stateDirectory: string;
  /** SHA-256 fingerprint of the server's certificate, when no trusted CA signed it. */
  fingerprint?: string;
}

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['server', 'tokenFile', 'stateDirectory'],
  properties: {
    server: { type: 'string', pattern: '^https?://' },
    tokenFile: { type: 'string', minLength: 1 },
    stateDirectory: { type: 'string', minLength: 1 },
    fingerprint: { type: 'string', minLength: 1 },
  },
} as const;
const validate = new Ajv({ strict: true }).compile(schema);

export function readAgentConfig(file: string): AgentConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(
      `cannot read the agent configuration ${file}: ${(error as Error).message}; run \`b365 agent install\` or pass --server and --token`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new FormatError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (!validate(value))
    throw new FormatError(
      `invalid agent configuration ${file}: ${validate.errors?.[0]?.instancePath || '/'} ${validate.errors?.[0]?.message}`,
    );
  const config = value as AgentConfig;
  if (config.fingerprint !== undefined) config.fingerprint = checkedFingerprint(config.fingerprint, file);
  const base = path.dirname(path.resolve(file));
  return {
    ...config,
    tokenFile: path.resolve(base, config.tokenFile),
    stateDirectory: path.resolve(base, config.stateDirectory),
  };
}

function checkedFingerprint(text: string, file: string): string {
  try {
    return normalizeFingerprint(text);
  } catch (error) {
    throw new FormatError(`invalid agent configuration ${file}: /fingerprint: ${(error as Error).message}`);
  }
}

export function readTokenFile(file: string): string {
  try {
    const token = fs.readFileSync(file, 'utf8').trim();
    if (!token) throw new UsageError(`token file ${file} is empty`);
    return token;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`cannot read token file ${file}: ${(error as Error).message}`);
  }
}

/** The token the agent uses and where it came from, for the log (never the token itself). */
export interface AgentToken {
  token: string;
  source: string;
  /** A token in the environment that lost to the configuration's, worth a warning. */
  ignored: string | null;
}

/**
 * Which token the agent uses: one given on its command line, else the configuration's
 * token file, else B365_TOKEN or B365_TOKEN_FILE. The configuration wins over the
 * environment because a service's environment can be inherited from anywhere
 * (a drop-in, a shell that ran `systemctl`), while the configuration is what
 * `b365 agent install` wrote for this machine.
 */
export function chooseAgentToken(
  flags: { token?: string; tokenFile?: string },
  configFile: string | null,
  config: AgentConfig | null,
  env: NodeJS.ProcessEnv = process.env,
): AgentToken {
  const environmentName = env.B365_TOKEN
    ? 'B365_TOKEN'
    : env.B365_TOKEN_FILE
      ? `B365_TOKEN_FILE ${env.B365_TOKEN_FILE}`
      : null;
  if (flags.token) return { token: flags.token, source: '--token', ignored: null };
  if (flags.tokenFile)
    return { token: readTokenFile(flags.tokenFile), source: `--token-file ${flags.tokenFile}`, ignored: null };
  if (config && configFile)
    return {
      token: readTokenFile(config.tokenFile),
      source: `${configFile} (token file ${config.tokenFile})`,
      ignored: environmentName,
    };
  if (env.B365_TOKEN) return { token: env.B365_TOKEN, source: 'B365_TOKEN', ignored: null };
  if (env.B365_TOKEN_FILE)
    return {
      token: readTokenFile(env.B365_TOKEN_FILE),
      source: `B365_TOKEN_FILE ${env.B365_TOKEN_FILE}`,
      ignored: null,
    };
  throw new UsageError('no token: pass --token, --token-file or --config, or set B365_TOKEN');
}
