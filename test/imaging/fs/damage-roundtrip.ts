// Damaged filesystems through the real pipeline: `b365 image` of an image file to a
// real server, `b365 restore` onto a fresh file, and the field's own checker run on
// both, so a test can assert that the restored copy is no worse than its source.
import path from 'node:path';
import { execa } from 'execa';
import { b365 } from '../../helpers/cli.js';
import type { TestServer } from '../../helpers/server.js';

export interface RoundTrip {
  restored: string;
  method: string;
  warnings: string[];
}

/** Capture `image` (a filesystem without a partition table) and restore it next to it. */
export async function captureAndRestore(server: TestServer, image: string, machine: string): Promise<RoundTrip> {
  const captured = await b365(['image', image, '--machine', machine, '--json'], { env: server.env });
  if (captured.exitCode !== 0) throw new Error(`b365 image ${image} failed (${captured.exitCode}): ${captured.stderr}`);
  const restored = path.join(path.dirname(image), `${path.basename(image, '.img')}-restored.img`);
  const restore = await b365(['restore', `${machine}@latest`, '--to', restored, '--skip-checks', '--json'], {
    env: server.env,
  });
  if (restore.exitCode !== 0)
    throw new Error(`b365 restore of ${machine} failed (${restore.exitCode}): ${restore.stderr}`);
  const volume = captured.json.volumes[0] as { method: string };
  return { restored, method: volume.method, warnings: captured.json.warnings as string[] };
}

/**
 * A checker's report with the image path and the version banner taken out (the banner
 * goes to stderr, so where it lands among the stdout lines varies), so that source and
 * copy compare equal.
 */
export function normaliseReport(output: string, image: string): string {
  return output
    .split(image)
    .join('IMAGE')
    .split('\n')
    .filter((line) => !/^(e2fsck|fsck\.fat|mkntfs|ntfsfix) v?\d+\.\d+/.test(line))
    .join('\n')
    .trim();
}

const CHECKER_TIMEOUT_MS = 20_000;
export const CHECKER_TIMED_OUT = 'the checker did not finish';

/**
 * What a checker says about an image: exit code, then stdout and stderr apart (mixed,
 * their interleaving varies from run to run), each with the image's path taken out.
 */
export async function checkerReport(command: string, args: string[], image: string): Promise<string> {
  const result = await execa(command, [...args, image], {
    reject: false,
    env: { LC_ALL: 'C', TZ: 'UTC' },
    timeout: CHECKER_TIMEOUT_MS,
  });
  // fsck.fat loops forever on some damaged tables: then the checker has no opinion.
  if (result.timedOut) return CHECKER_TIMED_OUT;
  return [
    `exit ${result.exitCode}`,
    normaliseReport(String(result.stdout), image),
    '-- stderr --',
    normaliseReport(String(result.stderr), image),
  ].join('\n');
}

export const e2fsckReport = (image: string) => checkerReport('e2fsck', ['-fn'], image);
export const ntfsfixReport = (image: string) => checkerReport('ntfsfix', ['--no-action'], image);
export const fsckFatReport = (image: string) => checkerReport('fsck.fat', ['-n'], image);
