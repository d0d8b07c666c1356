// The agent's own configuration file (written by `b365 agent install`): which server,
// where the token is, where it keeps its state. What to image and when comes from the
// server's policy, not from here.
import fs from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { normalizeFingerprint } from '../client/tls-pin.js';
import { FormatError, UsageError } from '../errors.js';

export const DEFAULT_CONFIG_DIRECTORY = '/etc/backup365';
export const DEFAULT_AGENT_CONFIG = path.join(DEFAULT_CONFIG_DIRECTORY, 'agent.json');
export const DEFAULT_AGENT_STATE = '/var/lib/backup365';

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
    throw new UsageError(`cannot read the agent configuration ${file}: ${(error as Error).message}; run \`b365 agent install\` or pass --server and --token`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new FormatError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (!validate(value)) throw new FormatError(`invalid agent configuration ${file}: ${validate.errors?.[0]?.instancePath || '/'} ${validate.errors?.[0]?.message}`);
  const config = value as AgentConfig;
  if (config.fingerprint !== undefined) config.fingerprint = checkedFingerprint(config.fingerprint, file);
  const base = path.dirname(path.resolve(file));
  return { ...config, tokenFile: path.resolve(base, config.tokenFile), stateDirectory: path.resolve(base, config.stateDirectory) };
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
