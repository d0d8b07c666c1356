// The technician's rescue session on a console: network, server, restore code, image,
// disk, a confirmation that names the disk, restore with progress and its checks; or
// an offline capture of a disk to the server. Plain numbered questions, no full-screen UI.
import type { Writable } from 'node:stream';
import { errorMessage, UserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { assertMachineName } from '../format/image-ref.js';
import { formatBytes, formatDuration } from '../core/units.js';
import { VERSION } from '../core/version.js';
import {
  assertMayCapture,
  captureFrom,
  connect,
  loadImage,
  restoreOnto,
  type ActionProgress,
  type Connection,
} from './actions.js';
import { checkServerUrl, kernelFingerprint, networkSettings, parseAfter, type AfterAction } from './cmdline.js';
import {
  assertWritable,
  confirmsDisk,
  describeDisk,
  diskWithSerial,
  listDisks,
  offeredDisks,
  type DiskCandidate,
} from './disks.js';
import { configureNetwork, listInterfaces } from './network.js';
import { finish } from './power.js';
import type { Prompter } from './prompter.js';
import { decideTrust, SessionTrust } from './trust.js';

export interface InteractiveOptions {
  prompter: Prompter;
  log: Logger;
  /** Defaults taken from the kernel command line (b365.server, b365.code, ...). */
  parameters: Map<string, string>;
  /** Offer to configure the network (off when the host's network is already up). */
  network: boolean;
  includeLoopDevices?: boolean;
}

/** A progress line rewritten in place on a terminal, printed every tenth elsewhere. */
function liveProgress(output: Writable & { isTTY?: boolean }): {
  update(progress: ActionProgress): void;
  done(): void;
} {
  const started = Date.now();
  let lastPrinted = 0;
  let lastTenth = -1;
  let stage = '';
  let open = false;
  return {
    update({ stage: current, bytesDone, bytesTotal }) {
      const percent = bytesTotal > 0 ? Math.floor((100 * bytesDone) / bytesTotal) : 0;
      const seconds = Math.max(0.001, (Date.now() - started) / 1000);
      const text = `  ${current} ${String(percent).padStart(3)}%  ${formatBytes(bytesDone)} of ${formatBytes(bytesTotal)}  ${formatBytes(bytesDone / seconds)}/s`;
      if (output.isTTY) {
        if (current === stage && Date.now() - lastPrinted < 500 && bytesDone < bytesTotal) return;
        if (current !== stage && open) output.write('\n');
        output.write(`\r${text.padEnd(72)}`);
        open = true;
      } else {
        const tenth = Math.floor(percent / 10);
        if (current === stage && tenth === lastTenth) return;
        lastTenth = tenth;
        output.write(`${text}\n`);
      }
      stage = current;
      lastPrinted = Date.now();
    },
    done() {
      if (open) output.write('\n');
      open = false;
    },
  };
}

async function networkStep(options: InteractiveOptions): Promise<void> {
  const { prompter } = options;
  const interfaces = await listInterfaces();
  prompter.say('Network');
  prompter.say(
    `  interfaces: ${interfaces.map((entry) => `${entry.name} (${entry.mac ?? 'no address'})${entry.addresses.length ? ` ${entry.addresses.join(' ')}` : ''}`).join(', ') || 'none found yet'}`,
  );
  for (;;) {
    const mode = await prompter.choose('How should this machine join the network', [
      { label: 'DHCP on every interface', value: 'dhcp' as const, keys: ['dhcp'] },
      { label: 'a static address', value: 'static' as const, keys: ['static'] },
      { label: 'leave it as it is', value: 'none' as const, keys: ['none', 'skip'] },
    ]);
    try {
      if (mode === 'none') return;
      const parameters = new Map<string, string>([['b365.net', mode]]);
      if (mode === 'static') {
        const names = (await listInterfaces()).map((entry) => entry.name);
        parameters.set(
          'b365.iface',
          await prompter.ask('Interface', {
            default: names[0],
            check: (answer) => (names.includes(answer) ? null : `one of ${names.join(', ')}`),
          }),
        );
        parameters.set('b365.ip', await prompter.ask('Address with prefix length (like 192.168.1.20/24)'));
        const gateway = await prompter.ask('Gateway (- for none)', { default: '-' });
        if (gateway !== '-') parameters.set('b365.gw', gateway);
        const dns = await prompter.ask('DNS servers, comma-separated (- for none)', { default: '-' });
        if (dns !== '-') parameters.set('b365.dns', dns);
      }
      prompter.say('  configuring the network ...');
      const configured = await configureNetwork(networkSettings(parameters));
      prompter.say(
        `  network up: ${configured.map((entry) => `${entry.name} ${entry.addresses.join(' ')}`).join(', ')}`,
      );
      return;
    } catch (error) {
      prompter.say(`  ${errorMessage(error)}`);
    }
  }
}

/** A prompt's check from a function that throws on a bad answer: its message, or null. */
function promptCheck(validate: (answer: string) => unknown): (answer: string) => string | null {
  return (answer) => {
    try {
      validate(answer);
      return null;
    } catch (error) {
      return errorMessage(error);
    }
  };
}

async function askForSecret(
  options: InteractiveOptions,
  wantsWrite: boolean,
): Promise<{ code?: string; token?: string }> {
  const { prompter, parameters } = options;
  const secret = wantsWrite
    ? await prompter.ask('Machine token (an admin gives it: b365 token create --role machine --machine NAME)', {
        default: parameters.get('b365.token'),
      })
    : await prompter.ask('Restore code (like K7QM-2XPT-9D4F), or token:SECRET', {
        default: parameters.get('b365.code'),
      });
  return wantsWrite || secret.startsWith('token:') ? { token: secret.replace(/^token:/, '') } : { code: secret };
}

/** Server, then trust in its certificate, and only then the code or token: a refused server never sees a secret. */
async function connectStep(
  options: InteractiveOptions,
  wantsWrite: boolean,
  trust: SessionTrust,
): Promise<{ connection: Connection; server: string }> {
  const { prompter, parameters } = options;
  let lastServer = parameters.get('b365.server') ?? process.env.B365_SERVER;
  for (;;) {
    const server = checkServerUrl(
      await prompter.ask(lastServer ? 'Backup server URL' : 'Backup server URL (like https://backup.example:8365)', {
        default: lastServer,
        check: promptCheck(checkServerUrl),
      }),
    );
    lastServer = server;
    const decision = await decideTrust(prompter, server, trust.known(server));
    if (!decision.trusted) continue;
    trust.remember(server, decision.fingerprint);
    const credentials = await askForSecret(options, wantsWrite);
    try {
      prompter.say('  contacting the server ...');
      const connection = await connect(server, credentials, {
        log: options.log,
        retryForMs: 10_000,
        fingerprint: decision.fingerprint ?? undefined,
      });
      if (connection.via === 'code')
        prompter.say(`  restore code accepted: machine ${connection.machine}, valid until ${connection.expiresAt}`);
      else prompter.say('  token accepted');
      return { connection, server };
    } catch (error) {
      prompter.say(`  ${errorMessage(error)}`);
    }
  }
}

async function chooseDisk(
  options: InteractiveOptions,
  question: string,
  preferredSerial: string | null,
): Promise<DiskCandidate | null> {
  const { prompter } = options;
  const disks = offeredDisks(await listDisks(), { includeLoop: options.includeLoopDevices });
  if (!disks.length) {
    prompter.say('  no disk found: is the disk controller supported? (lsblk shows what the kernel sees)');
    return null;
  }
  const match = diskWithSerial(disks, preferredSerial);
  prompter.say('Disks');
  const choice = await prompter.choose(
    question,
    [
      ...disks.map((disk) => ({
        label: `${describeDisk(disk)}${disk === match ? '   <- the disk this image was taken from' : ''}${disk.mounted.length || disk.stacked.length ? '   (in use)' : ''}`,
        value: disk as DiskCandidate | null,
        keys: [disk.name, disk.path],
      })),
      { label: 'back', value: null, keys: ['back'] },
    ],
    match ? disks.indexOf(match) : -1,
  );
  return choice;
}

async function restoreFlow(options: InteractiveOptions, connection: Connection): Promise<boolean> {
  const { prompter } = options;
  const machine =
    connection.machine ??
    (await prompter.ask('Machine whose images to restore', {
      check: promptCheck(assertMachineName),
    }));
  const images = (await connection.client.listImages(machine)).sort((a, b) => b.timestamp.localeCompare(a.timestamp));
  if (!images.length) {
    prompter.say(`  the server holds no image of ${machine}`);
    return false;
  }
  prompter.say(`Images of ${machine} (newest first)`);
  const info = await prompter.choose(
    'Which image',
    images.map((image) => ({
      label: `${image.createdAt.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC')}  ${formatBytes(image.sizeBytes).padStart(9)} disk, ${formatBytes(image.usedBytes)} used  ${image.state === 'ok' ? 'verification ok' : `VERIFICATION FAILED: ${image.stateReason ?? ''}`}`,
      value: image,
      keys: [image.id, image.timestamp],
    })),
  );
  const { manifest } = await loadImage(connection.client, info.id);
  const source = manifest.disks[0]!;
  prompter.say(
    `  ${info.id}: disk of ${formatBytes(source.size)}${source.model ? `, ${source.model}` : ''}${source.serial ? `, serial ${source.serial}` : ''}`,
  );
  if (info.state === 'failed') {
    const go = await prompter.ask('This image failed verification. Restore it anyway? (yes/no)', { default: 'no' });
    if (go !== 'yes') return false;
  }
  const disk = await chooseDisk(options, 'Restore onto which disk', source.serial);
  if (!disk) return false;
  try {
    assertWritable(disk);
  } catch (error) {
    prompter.say(`  ${errorMessage(error)}`);
    return false;
  }
  if (disk.size < source.size) {
    prompter.say(
      `  ${disk.name} holds ${formatBytes(disk.size)}, the image needs ${formatBytes(source.size)}: choose a larger disk`,
    );
    return false;
  }
  prompter.say('');
  prompter.say(
    `  EVERYTHING on ${disk.path} (${describeDisk(disk).replace(/\s+/g, ' ')}) will be replaced by ${info.id}.`,
  );
  const typed = await prompter.ask(`  Type the disk name (${disk.name}) to restore, or anything else to stop`);
  if (!confirmsDisk(typed, disk)) {
    prompter.say('  stopped; nothing was written');
    return false;
  }
  const progress = liveProgress(prompter.output);
  try {
    const report = await restoreOnto({ client: connection.client, image: info.id, disk, onProgress: progress.update });
    progress.done();
    prompter.say(
      `  restored ${report.image} onto ${report.target}: ${formatBytes(report.bytesWritten)} written in ${formatDuration(report.durationMs)}`,
    );
    for (const check of report.checks)
      prompter.say(`  ${check.ok ? 'ok    ' : 'FAILED'} ${check.check}: ${check.detail}`);
    prompter.say(
      report.verified
        ? '  The restore verified: the disk holds exactly what was imaged.'
        : '  The restore did NOT verify.',
    );
    return report.verified;
  } catch (error) {
    progress.done();
    prompter.say(`  restore failed: ${errorMessage(error)}`);
    const report =
      error instanceof UserError
        ? (error.details?.report as { checks?: { ok: boolean; check: string; detail: string }[] } | undefined)
        : undefined;
    for (const check of report?.checks ?? [])
      prompter.say(`  ${check.ok ? 'ok    ' : 'FAILED'} ${check.check}: ${check.detail}`);
    return false;
  }
}

async function captureFlow(options: InteractiveOptions, connection: Connection): Promise<boolean> {
  const { prompter } = options;
  try {
    assertMayCapture(connection);
  } catch (error) {
    prompter.say(`  ${(error as Error).message}`);
    return false;
  }
  const machine = await prompter.ask('Machine name to store the image under', {
    default: connection.machine ?? options.parameters.get('b365.machine'),
    check: promptCheck(assertMachineName),
  });
  const disk = await chooseDisk(options, 'Capture which disk', null);
  if (!disk) return false;
  const progress = liveProgress(prompter.output);
  try {
    const report = await captureFrom({
      client: connection.client,
      machine,
      disk,
      log: options.log,
      onProgress: progress.update,
    });
    progress.done();
    prompter.say(
      `  image ${report.image} committed: read ${formatBytes(report.bytesRead)}, uploaded ${formatBytes(report.bytesUploaded)} in ${formatDuration(report.durationMs)}`,
    );
    for (const warning of report.warnings) prompter.say(`  warning: ${warning}`);
    return true;
  } catch (error) {
    progress.done();
    prompter.say(`  capture failed: ${errorMessage(error)}`);
    return false;
  }
}

/** The kernel line's b365.fingerprint=; a malformed one is shown and the technician confirms by hand instead. */
function fingerprintFromKernel(options: InteractiveOptions): string | null {
  try {
    return kernelFingerprint(options.parameters);
  } catch (error) {
    options.prompter.say(`  ${errorMessage(error)}`);
    options.prompter.say("  The server's fingerprint will be shown for you to confirm instead.");
    return null;
  }
}

/** Runs until the technician reboots, powers off or leaves for the shell. */
export async function runInteractive(options: InteractiveOptions): Promise<AfterAction> {
  const { prompter } = options;
  prompter.say('');
  prompter.say(`Backup365 rescue ${VERSION}`);
  prompter.say('Nothing is written to any disk until you confirm it by typing the disk name.');
  prompter.say('');
  const trust = new SessionTrust(fingerprintFromKernel(options));
  if (options.network) await networkStep(options);
  let restored = false;
  for (;;) {
    prompter.say('');
    const action = await prompter.choose(
      'What now',
      [
        { label: 'restore an image onto a disk', value: 'restore' as const, keys: ['restore'] },
        { label: 'capture a disk to the server (offline image)', value: 'capture' as const, keys: ['capture'] },
        { label: 'network settings', value: 'network' as const, keys: ['network'] },
        { label: 'reboot', value: 'reboot' as const, keys: ['reboot'] },
        { label: 'power off', value: 'poweroff' as const, keys: ['poweroff'] },
        { label: 'leave for a shell', value: 'shell' as const, keys: ['shell', 'quit'] },
      ],
      restored ? 3 : 0,
    );
    if (action === 'network') {
      await networkStep(options);
      continue;
    }
    if (action === 'reboot' || action === 'poweroff' || action === 'shell') {
      await finish(parseAfter(action, 'action'));
      return action;
    }
    const { connection } = await connectStep(options, action === 'capture', trust);
    try {
      if (action === 'restore') restored = (await restoreFlow(options, connection)) || restored;
      else await captureFlow(options, connection);
    } catch (error) {
      prompter.say(`  ${errorMessage(error)}`);
    } finally {
      await connection.client.close();
    }
  }
}
