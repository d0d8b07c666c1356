// The arguments of `b365 agent install` as the tests run it: which server and token, and
// where the configuration, the unit and the state go (temporary directories, never /etc).
import path from 'node:path';

/** Where an install writes, and the connection it records. */
export interface AgentInstallPlaces {
  configDir: string;
  unitDir: string;
  stateDir: string;
  /** Defaults to a port nothing listens on (use with --no-check). */
  server?: string;
  token?: string;
}

export const UNREACHABLE_SERVER = 'http://127.0.0.1:9';
/** A token of the right shape that no server checks (with --no-check). */
export const UNCHECKED_TOKEN = 'b365_not_checked_0123456789';

/** The usual places under one temporary directory: etc/, the unit beside it, state/. */
export function installPlacesUnder(base: string): AgentInstallPlaces {
  return { configDir: path.join(base, 'etc'), unitDir: base, stateDir: path.join(base, 'state') };
}

/** `agent install` with the places, then `flags` (--no-start, --no-check, --json ...). */
export function agentInstallArgs(places: AgentInstallPlaces, flags: string[]): string[] {
  return [
    'agent',
    'install',
    '--server',
    places.server ?? UNREACHABLE_SERVER,
    '--token',
    places.token ?? UNCHECKED_TOKEN,
    '--config-dir',
    places.configDir,
    '--unit-dir',
    places.unitDir,
    '--state-dir',
    places.stateDir,
    ...flags,
  ];
}
