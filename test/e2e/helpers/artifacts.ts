// What the end-to-end tests boot: the rescue ISO (built by `make bootmedia`, or built
// here when missing), its kernel and initrd for direct boots, and the cached bootable
// test disk. Each step says how long it took, so a slow stage is easy to spot.
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
export const ISO_PATH = process.env.B365_RESCUE_ISO ?? path.join(REPO_ROOT, 'dist', 'b365-rescue.iso');
export const OVMF = { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/usr/share/OVMF/OVMF_VARS_4M.fd' };

interface Commenter {
  comment(...message: unknown[]): void;
}

/** Where a guest's serial console is written; kept after the run for reading when a test fails. */
export async function serialLogPath(name: string): Promise<string> {
  const directory = process.env.B365_E2E_LOGS ?? path.join(REPO_ROOT, 'dist', 'e2e-logs');
  await fs.mkdir(directory, { recursive: true });
  return path.join(directory, `${name}.log`);
}

/** Run `work`, then note its duration in the TAP output. */
export async function stage<T>(t: Commenter, name: string, work: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    return await work();
  } finally {
    t.comment(`stage "${name}" took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}

export async function ensureIso(): Promise<string> {
  const exists = await fs.access(ISO_PATH).then(
    () => true,
    () => false,
  );
  if (!exists)
    await execa(path.join(REPO_ROOT, 'bootmedia', 'build.sh'), [], {
      stdio: 'inherit',
      env: { BOOTMEDIA_OUT: ISO_PATH },
    });
  return ISO_PATH;
}

/** The ISO's own kernel and initrd, for a boot with kernel parameters of the test's choosing. */
export async function extractBootFiles(iso: string, directory: string): Promise<{ kernel: string; initrd: string }> {
  const kernel = path.join(directory, 'vmlinuz');
  const initrd = path.join(directory, 'initrd.img');
  await execa('xorriso', [
    '-osirrox',
    'on',
    '-indev',
    iso,
    '-extract',
    '/live/vmlinuz',
    kernel,
    '-extract',
    '/live/initrd.img',
    initrd,
  ]);
  return { kernel, initrd };
}

export interface TestDisk {
  image: string;
  /** Printed by the disk's marker unit at boot: proves which disk booted. */
  id: string;
}

export async function ensureTestDisk(): Promise<TestDisk> {
  const result = await execa(path.join(REPO_ROOT, 'bootmedia', 'testdisk', 'build.sh'), [], { stderr: 'inherit' });
  const [image, id] = String(result.stdout).trim().split('\n').pop()!.split(' ');
  if (!image || !id) throw new Error(`the test disk builder printed ${JSON.stringify(result.stdout)}`);
  return { image, id };
}

/**
 * Kernel parameters of a live boot of the rescue ISO, plus the test's own. `toram`: under
 * TCG, starting systemd straight from the medium was measured 40-100 s slower than from
 * a copy in memory, and the copy itself takes about ten seconds.
 */
export function liveAppend(parameters: Record<string, string>): string {
  const own = Object.entries(parameters).map(([key, value]) => `${key}=${value}`);
  return ['boot=live', 'toram', 'console=ttyS0,115200', 'panic=1', ...own].join(' ');
}
