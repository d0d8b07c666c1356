// A qemu-system-x86_64 guest for end-to-end tests: TCG (no KVM needed), its serial
// console written to a file that tests wait on with a regular expression, user-mode
// networking that reaches one host port and nothing else, and always killed at teardown.
import fs from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface QemuOptions {
  /** Where the serial console goes. */
  serialLog: string;
  memoryMiB?: number;
  cpus?: number;
  /** Direct kernel boot: -kernel/-initrd/-append. */
  kernel?: { kernel: string; initrd: string; append: string };
  cdrom?: string;
  /** Disks in order; each gets a virtio-blk device, the first is /dev/vda. */
  disks?: { file: string; serial?: string; readOnly?: boolean; uncached?: boolean }[];
  /** A raw image attached as a USB mass-storage stick. */
  usbStick?: string;
  /** Boot through UEFI with these OVMF code and variables files (variables are copied). */
  uefi?: { code: string; vars: string };
  /** The one thing the guest can reach: this host port, as 10.0.2.100:8365. */
  hostPort?: number;
  /** A guest port the host reaches as 127.0.0.1:hostPort (the guest still reaches nothing). */
  forward?: { hostPort: number; guestPort: number };
}

/** The host's server as the guest reaches it: the guestfwd address. Its certificate does not name it; the pin makes that irrelevant. */
export const GUEST_SERVER_URL = 'https://10.0.2.100:8365';

export class QemuGuest {
  private exited: Promise<{ exitCode: number | undefined; signal: string | undefined }>;
  private done = false;

  private constructor(
    readonly process: ResultPromise,
    readonly serialLog: string,
  ) {
    this.exited = process.then(
      (result) => ({ exitCode: result.exitCode, signal: result.signal }),
      (error: { exitCode?: number; signal?: string }) => ({ exitCode: error.exitCode, signal: error.signal }),
    );
    void this.exited.then(() => {
      this.done = true;
    });
  }

  static async start(t: Teardown, options: QemuOptions): Promise<QemuGuest> {
    await fs.writeFile(options.serialLog, '');
    const args = [
      '-machine',
      'q35,accel=tcg',
      '-cpu',
      'max',
      '-m',
      String(options.memoryMiB ?? 2048),
      '-smp',
      String(options.cpus ?? 2),
    ];
    args.push('-display', 'none', '-monitor', 'none', '-no-reboot', '-serial', `file:${options.serialLog}`);
    if (options.uefi) {
      const vars = `${options.serialLog}.OVMF_VARS.fd`;
      await fs.copyFile(options.uefi.vars, vars);
      args.push(
        '-drive',
        `if=pflash,format=raw,unit=0,readonly=on,file=${options.uefi.code}`,
        '-drive',
        `if=pflash,format=raw,unit=1,file=${vars}`,
      );
    }
    if (options.kernel)
      args.push('-kernel', options.kernel.kernel, '-initrd', options.kernel.initrd, '-append', options.kernel.append);
    if (options.cdrom) args.push('-drive', `file=${options.cdrom},media=cdrom,readonly=on`);
    for (const [index, disk] of (options.disks ?? []).entries()) {
      // uncached: qemu writes with O_DIRECT and passes the guest's flushes on as fdatasync,
      // so the host file holds what the guest's disk would hold, and killing qemu loses
      // only what a power cut would (the guest's page cache, writes not yet flushed).
      const cache = disk.uncached ? ',cache=none,aio=threads' : '';
      args.push(
        '-drive',
        `file=${disk.file},format=raw,if=none,id=disk${index}${disk.readOnly ? ',readonly=on' : ''}${cache}`,
      );
      args.push('-device', `virtio-blk-pci,drive=disk${index}${disk.serial ? `,serial=${disk.serial}` : ''}`);
    }
    if (options.usbStick) {
      args.push(
        '-device',
        'qemu-xhci,id=xhci',
        '-drive',
        `file=${options.usbStick},format=raw,if=none,id=stick`,
        '-device',
        'usb-storage,bus=xhci.0,drive=stick,removable=on',
      );
    }
    if (options.hostPort || options.forward) {
      // restrict=on: no route anywhere; the guestfwd rule is the only way out, and a
      // hostfwd rule only lets the host in.
      const rules = [
        ...(options.hostPort ? [`guestfwd=tcp:10.0.2.100:8365-cmd:nc 127.0.0.1 ${options.hostPort}`] : []),
        ...(options.forward ? [`hostfwd=tcp:127.0.0.1:${options.forward.hostPort}-:${options.forward.guestPort}`] : []),
      ];
      args.push('-netdev', `user,id=n0,restrict=on,${rules.join(',')}`, '-device', 'virtio-net-pci,netdev=n0');
    } else {
      args.push('-nic', 'none');
    }
    const child = execa('qemu-system-x86_64', args, { reject: false, stdout: 'pipe', stderr: 'pipe', buffer: true });
    const guest = new QemuGuest(child, options.serialLog);
    t.teardown(() => guest.kill());
    return guest;
  }

  async serial(): Promise<string> {
    return fs.readFile(this.serialLog, 'utf8').catch(() => '');
  }

  get running(): boolean {
    return !this.done;
  }

  /** Wait until the serial console shows `pattern`; fails on timeout or when qemu exits first. */
  async waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = await this.serial();
      const match = text.match(pattern);
      if (match) return match;
      if (!this.running)
        throw new Error(
          `qemu exited before ${pattern} appeared; serial console ends with:\n${tail(text)}\n${await this.stderr()}`,
        );
      if (Date.now() >= deadline)
        throw new Error(
          `${pattern} did not appear on the serial console within ${Math.round(timeoutMs / 1000)} s; it ends with:\n${tail(text)}`,
        );
      await sleep(500);
    }
  }

  /**
   * Wait for the rescue's whole `B365-RESULT ...` line. The serial log grows while it is
   * read, so the match must include the line's end: a line cut mid-read is not a result.
   * The console's tty turns the line's "\r\n" into "\r\r\n".
   */
  async waitForResult(timeoutMs: number): Promise<string> {
    const match = await this.waitFor(/(B365-RESULT [^\r\n]*)\r*\n/, timeoutMs);
    return match[1]!;
  }

  /** Wait for the guest to power off by itself. */
  async waitForExit(timeoutMs: number): Promise<number | undefined> {
    // An unreferenced timer: a guest that exits early must not leave the test waiting on it.
    const result = await Promise.race([this.exited, sleep(timeoutMs, null, { ref: false })]);
    if (result === null)
      throw new Error(
        `qemu still running after ${Math.round(timeoutMs / 1000)} s; serial console ends with:\n${tail(await this.serial())}`,
      );
    return result.exitCode;
  }

  private async stderr(): Promise<string> {
    const result = await Promise.race([this.process, sleep(100, null, { ref: false })]);
    return result ? String(result.stderr ?? '') : '';
  }

  /** SIGKILL: the guest stops at once, as at a power cut; nothing it did not flush is written. */
  async powerCut(): Promise<void> {
    if (!this.running) return;
    this.process.kill('SIGKILL');
    await this.exited;
  }

  async kill(): Promise<void> {
    if (!this.running) return;
    this.process.kill('SIGTERM');
    const stopped = await Promise.race([this.exited.then(() => true), sleep(5000, false, { ref: false })]);
    if (!stopped) {
      this.process.kill('SIGKILL');
      await this.exited;
    }
  }
}

function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}
