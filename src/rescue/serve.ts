// The rescue medium as a repository server (`b365.serve=/dev/DISK`): bring the network up,
// mount the disk that holds a repository and serve it until stopped, so a technician can
// offer a repository disk to the machines on site from the rescue stick alone.
import fs from 'node:fs/promises';
import { execa } from 'execa';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage, NotFoundError, UnavailableError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { ServeSettings } from './cmdline.js';
import type { ConsoleEcho } from './console.js';
import { configureNetwork } from './network.js';

export const SERVE_MOUNTPOINT = '/run/b365/repository';

export interface ServeOptions {
  settings: ServeSettings;
  echo: ConsoleEcho;
  log: Logger;
  /** Serving ends when this aborts (SIGTERM, SIGINT). */
  signal: AbortSignal;
  /** Where the disk is mounted; SERVE_MOUNTPOINT on the rescue system. */
  mountpoint?: string;
}

/** A disk or a partition: any block device will do, the filesystem on it is what counts. */
async function waitForBlockDevice(device: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const isBlockDevice = await fs.stat(device).then(
      (stats) => stats.isBlockDevice(),
      () => false,
    );
    if (isBlockDevice) return;
    if (Date.now() >= deadline)
      throw new NotFoundError(`disk ${device} did not appear within ${Math.round(timeoutMs / 1000)} s`);
    await sleep(500);
  }
}

async function mountRepository(device: string, mountpoint: string): Promise<void> {
  await fs.mkdir(mountpoint, { recursive: true });
  // Mounting replays the filesystem's journal, which is all a repository needs after a
  // power cut: the store's write order (sync, then link) and the catalog's synced commits do the rest.
  const result = await execa('mount', [device, mountpoint], { reject: false });
  if (result.exitCode !== 0)
    throw new UnavailableError(
      `cannot mount ${device}: ${String(result.stderr).trim() || `mount exited with ${result.exitCode}`}`,
    );
}

export async function runServe(options: ServeOptions): Promise<void> {
  const { settings, echo, log } = options;
  const mountpoint = options.mountpoint ?? SERVE_MOUNTPOINT;
  const say = (text: string) => echo.line(text);
  try {
    if (settings.network.mode !== 'none') {
      const interfaces = await configureNetwork(settings.network);
      say(`B365: network up: ${interfaces.map((entry) => `${entry.name} ${entry.addresses.join(' ')}`).join(', ')}`);
    }
    await waitForBlockDevice(settings.device, settings.diskWaitSeconds * 1000);
    await mountRepository(settings.device, mountpoint);
    const { startServer } = await import('../../server/main.js');
    const running = await startServer({ repo: mountpoint, listen: settings.listen, log }).catch(
      async (error: unknown) => {
        await execa('umount', [mountpoint], { reject: false });
        throw error;
      },
    );
    // Clients on site pin the certificate the repository made for itself on its first start.
    say(
      `B365-SERVING ${running.url} repository ${settings.device} mounted at ${mountpoint}${running.certificate ? ` fingerprint ${running.certificate.fingerprint}` : ''}`,
    );
    await new Promise<void>((resolve) => {
      if (options.signal.aborted) resolve();
      else options.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    await running.close();
    await execa('umount', [mountpoint], { reject: false });
    say('B365: repository server stopped, disk unmounted');
  } catch (error) {
    say(`B365-SERVE-FAILED ${errorMessage(error)}`);
    throw error;
  }
}
