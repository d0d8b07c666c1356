// The dedicated system account the server runs as: created once, like a package's
// postinst would, with no login shell and the service's state directory as home.
import { execa } from 'execa';
import { UserError } from '../core/errors.js';

export async function systemUserExists(name: string): Promise<boolean> {
  return (await execa('getent', ['passwd', name], { reject: false })).exitCode === 0;
}

/** Create the user (and its group) unless it exists; true when it was created now. */
export async function ensureSystemUser(name: string, home: string): Promise<boolean> {
  if (await systemUserExists(name)) return false;
  const result = await execa(
    'useradd',
    [
      '--system',
      '--user-group',
      '--no-create-home',
      '--home-dir',
      home,
      '--shell',
      '/usr/sbin/nologin',
      '--comment',
      'Backup365 server',
      name,
    ],
    { reject: false },
  );
  if (result.exitCode !== 0)
    throw new UserError(
      `cannot create the system user ${name}: ${String(result.stderr).trim() || `useradd exited ${result.exitCode}`}`,
    );
  return true;
}
