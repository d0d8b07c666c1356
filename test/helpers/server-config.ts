// A server configuration file for a test server (passed as B365_SERVER_CONFIG).
import fs from 'node:fs/promises';
import path from 'node:path';
import { tempDir } from './tmp.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Write `config` to a file and return the environment that makes a server read it. */
export async function serverConfigEnv(t: Teardown, config: Record<string, unknown>): Promise<Record<string, string>> {
  const file = path.join(await tempDir(t, 'b365-config-'), 'server.json');
  await fs.writeFile(file, JSON.stringify(config));
  return { B365_SERVER_CONFIG: file };
}
