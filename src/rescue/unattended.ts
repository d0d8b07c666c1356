// An unattended rescue run, as the kernel command line asks: network, restore code,
// image, disk, action, then power off or reboot. Progress and one final B365-RESULT
// line go to every console, so a script watching the serial port knows how it ended.
import os from 'node:os';
import {
  errorMessage,
  ExitCode,
  UntrustedServerError,
  UsageError,
  UserError,
  VerificationError,
} from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { formatBytes, formatDuration } from '../core/units.js';
import { isLoopbackHost } from '../core/listen.js';
import {
  assertMayCapture,
  captureFrom,
  connect,
  failureCode,
  imageReference,
  loadImage,
  resultLine,
  restoreOnto,
  type ActionProgress,
  type Connection,
} from './actions.js';
import type { UnattendedSettings } from './cmdline.js';
import type { ConsoleEcho } from './console.js';
import { describeDisk, waitForDisk } from './disks.js';
import { configureNetwork } from './network.js';
import { finish } from './power.js';

export interface UnattendedOptions {
  settings: UnattendedSettings;
  echo: ConsoleEcho;
  log: Logger;
  signal?: AbortSignal;
}

/** Prints a progress line at every tenth of the way and at each new stage. */
export function progressPrinter(say: (text: string) => void): (progress: ActionProgress) => void {
  let stage = '';
  let lastTenth = -1;
  return ({ stage: current, bytesDone, bytesTotal }) => {
    const tenth = bytesTotal > 0 ? Math.floor((10 * bytesDone) / bytesTotal) : 0;
    if (current === stage && tenth === lastTenth) return;
    stage = current;
    lastTenth = tenth;
    say(`B365: ${current} ${tenth * 10}% (${formatBytes(bytesDone)} of ${formatBytes(bytesTotal)})`);
  };
}

/** How the server will be trusted, said before the code is sent; plain HTTP to another host is flagged. */
export function trustLine(settings: Pick<UnattendedSettings, 'server' | 'fingerprint'>): string {
  const url = new URL(settings.server);
  if (url.protocol === 'http:') {
    return isLoopbackHost(url.hostname)
      ? `B365: plain HTTP to ${url.host} on this machine`
      : `B365: WARNING: plain HTTP to ${url.host}: the restore code and the disk cross the network in clear`;
  }
  if (settings.fingerprint)
    return `B365: the server's certificate must have SHA-256 fingerprint ${settings.fingerprint} (b365.fingerprint=)`;
  return "B365: no b365.fingerprint= given: the server's certificate must be signed by a certificate authority this system trusts";
}

/** What to do about a refused certificate, in the kernel line's own terms. */
export function refusedServerLine(error: UntrustedServerError): string {
  const presented = String(error.details?.presentedFingerprint ?? 'unknown');
  const expected = error.details?.expectedFingerprint;
  const what = expected
    ? `its certificate's fingerprint ${presented} is not b365.fingerprint=${String(expected)}`
    : `no trusted CA vouches for its certificate (fingerprint ${presented}) and no b365.fingerprint= was given`;
  return `B365: REFUSED the server: ${what}; the restore code was not sent. Boot with b365.fingerprint= set to what \`b365 server fingerprint\` prints on the server.`;
}

/** Runs to the end; a failure is reported on the consoles, then thrown for the exit code. */
export async function runUnattended(options: UnattendedOptions): Promise<void> {
  const { settings } = options;
  const say = (text: string) => options.echo.line(text);
  const started = Date.now();
  let connection: Connection | null = null;
  say(
    `B365: unattended ${settings.action} of ${settings.disk} starting (server ${settings.server}, system up ${Math.round(os.uptime())} s)`,
  );
  try {
    await bringUpNetwork(settings, say);
    say(trustLine(settings));
    connection = await connect(
      settings.server,
      { code: settings.code, token: settings.token },
      { log: options.log, signal: options.signal, fingerprint: settings.fingerprint ?? undefined },
    );
    const machine = machineOf(settings, connection, say);
    if (settings.action === 'restore') await unattendedRestore(options, connection, machine, started);
    else await unattendedCapture(options, connection, machine, started);
    await connection.client.close();
    await finish(settings.after);
  } catch (error) {
    await reportFailure(options, connection, error);
    throw error;
  }
}

async function bringUpNetwork(settings: UnattendedSettings, say: (text: string) => void): Promise<void> {
  if (settings.network.mode === 'none') return;
  say(
    `B365: network: ${settings.network.mode}${settings.network.interface ? ` on ${settings.network.interface}` : ''}`,
  );
  const interfaces = await configureNetwork(settings.network);
  say(`B365: network up: ${interfaces.map((entry) => `${entry.name} ${entry.addresses.join(' ')}`).join(', ')}`);
}

/** The machine the run acts for: the one the restore code opens, which b365.machine= may only confirm. */
function machineOf(settings: UnattendedSettings, connection: Connection, say: (text: string) => void): string {
  if (connection.via === 'code')
    say(`B365: restore code accepted for machine ${connection.machine}, valid until ${connection.expiresAt}`);
  if (connection.machine && settings.machine && connection.machine !== settings.machine) {
    throw new UsageError(`the restore code opens machine ${connection.machine}, not ${settings.machine}`);
  }
  const machine = settings.machine ?? connection.machine;
  if (!machine) throw new UsageError('b365.machine=NAME is needed with a token');
  return machine;
}

async function unattendedRestore(
  options: UnattendedOptions,
  connection: Connection,
  machine: string,
  started: number,
): Promise<void> {
  const { settings } = options;
  const say = (text: string) => options.echo.line(text);
  const { info, manifest } = await loadImage(connection.client, imageReference(machine, settings.image));
  say(`B365: image ${info.id} taken ${info.createdAt}, ${formatBytes(info.sizeBytes)}, verification ${info.state}`);
  if (info.state === 'failed')
    throw new VerificationError(
      `image ${info.id} failed verification (${info.stateReason ?? 'no reason given'}); choose another image`,
    );
  const disk = await waitForDisk(settings.disk, settings.diskWaitSeconds * 1000);
  say(`B365: target ${describeDisk(disk).replace(/\s+/g, ' ')}`);
  const source = manifest.disks[0];
  if (source?.serial && disk.serial && source.serial !== disk.serial)
    say(`B365: note: the image was taken from a disk with serial ${source.serial}`);
  const report = await restoreOnto({
    client: connection.client,
    image: info.id,
    disk,
    signal: options.signal,
    onProgress: progressPrinter(say),
  });
  for (const check of report.checks) say(`B365: check ${check.ok ? 'ok' : 'FAILED'}: ${check.check}: ${check.detail}`);
  say(
    resultLine({
      status: 'ok',
      action: 'restore',
      image: report.image,
      target: report.target,
      bytes: report.bytesWritten,
      verified: report.verified ? 'yes' : 'no',
      seconds: Math.round((Date.now() - started) / 1000),
    }),
  );
}

async function unattendedCapture(
  options: UnattendedOptions,
  connection: Connection,
  machine: string,
  started: number,
): Promise<void> {
  const say = (text: string) => options.echo.line(text);
  assertMayCapture(connection);
  const disk = await waitForDisk(options.settings.disk, options.settings.diskWaitSeconds * 1000);
  say(`B365: source ${describeDisk(disk).replace(/\s+/g, ' ')}`);
  const report = await captureFrom({
    client: connection.client,
    machine,
    disk,
    log: options.log,
    signal: options.signal,
    onProgress: progressPrinter(say),
  });
  say(
    `B365: read ${formatBytes(report.bytesRead)}, uploaded ${formatBytes(report.bytesUploaded)} in ${formatDuration(report.durationMs)}`,
  );
  say(
    resultLine({
      status: 'ok',
      action: 'capture',
      image: report.image,
      source: disk.path,
      bytes: report.bytesRead,
      uploaded: report.bytesUploaded,
      seconds: Math.round((Date.now() - started) / 1000),
    }),
  );
}

/** The failure on every console as one B365-RESULT line, then the power action for failures. */
async function reportFailure(options: UnattendedOptions, connection: Connection | null, error: unknown): Promise<void> {
  const { settings, log } = options;
  const say = (text: string) => options.echo.line(text);
  log.debug({ error: error instanceof Error ? error.stack : String(error) }, 'unattended run failed');
  await connection?.client.close().catch(() => undefined);
  if (error instanceof UntrustedServerError) say(refusedServerLine(error));
  const exitCode = error instanceof UserError ? error.exitCode : ExitCode.failure;
  say(
    resultLine({
      status: 'failed',
      action: settings.action,
      code: failureCode(error),
      exit: exitCode,
      message: errorMessage(error),
    }),
  );
  await finish(settings.afterFailure);
}
