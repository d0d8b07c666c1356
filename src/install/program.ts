// Which program a unit's ExecStart= runs: the Node that runs this command and the
// CLI's main script, both resolved through symlinks. A unit must not run a build
// tree (a checkout that `git pull` or `make` changes under the service), nor anything
// under /tmp or a home directory, which the hardened units hide (PrivateTmp, ProtectHome).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../core/errors.js';

/** The CLI's main script: dist/src/cli/main.js next to this module's dist/src/install/. */
export const MAIN_SCRIPT = fileURLToPath(new URL('../cli/main.js', import.meta.url));

const HIDDEN_FROM_SERVICES = ['/tmp/', '/var/tmp/', '/home/', '/root/', '/run/user/'];

/** The directory that holds dist/ (and node_modules/, package.json). */
export function programRoot(mainScript: string): string {
  return path.resolve(path.dirname(mainScript), '..', '..', '..');
}

/** Why this program cannot be what a service runs, or null when it can. */
export function buildTreeReason(mainScript: string, nodePath: string): string | null {
  const root = programRoot(mainScript);
  for (const file of [nodePath, mainScript]) {
    const hidden = HIDDEN_FROM_SERVICES.find((prefix) => file.startsWith(prefix));
    if (hidden) return `${file} is under ${hidden}, which the service's sandbox hides`;
  }
  if (root.startsWith('/work/')) return `${root} is a working tree under /work`;
  for (const marker of ['.git', 'tsconfig.json']) {
    if (fs.existsSync(path.join(root, marker))) return `${root} is a build tree (it has ${marker})`;
  }
  return null;
}

/**
 * The command that runs `b365`, as absolute paths: [node, main script]. Refused for a
 * build tree unless allowBuildTree (tests, and trying a unit out before `make install`).
 */
export function installedCommand(options: { allowBuildTree: boolean }): string[] {
  const nodePath = fs.realpathSync(process.execPath);
  const mainScript = fs.realpathSync(MAIN_SCRIPT);
  const reason = buildTreeReason(mainScript, nodePath);
  if (reason && !options.allowBuildTree) {
    throw new UsageError(
      `refusing to write a service that runs ${mainScript}: ${reason}. Install the program first (make install, or the .deb) and run its b365, or pass --allow-build-tree to use this copy anyway`,
    );
  }
  return [nodePath, mainScript];
}
