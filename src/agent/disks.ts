// The disks an agent images when its policy names none: every fixed, writable whole
// disk the kernel lists (no removable media, optical drives, loop, RAM or zram devices).
import { execa } from 'execa';
import { UserError } from '../core/errors.js';

interface LsblkDevice {
  path: string;
  type: string;
  rm: boolean | string | number;
  ro: boolean | string | number;
  size: number | string;
}

const truthy = (value: boolean | string | number) => value === true || value === '1' || value === 1;

export async function fixedDisks(): Promise<string[]> {
  const result = await execa('lsblk', ['--json', '--bytes', '--nodeps', '-o', 'PATH,TYPE,RM,RO,SIZE'], {
    reject: false,
  });
  if (result.exitCode !== 0) throw new UserError(`lsblk failed: ${String(result.stderr).trim()}`);
  const devices = (JSON.parse(String(result.stdout)) as { blockdevices: LsblkDevice[] }).blockdevices;
  return devices
    .filter((device) => device.type === 'disk' && !truthy(device.rm) && !truthy(device.ro) && Number(device.size) > 0)
    .filter((device) => !/^\/dev\/(zram|ram|loop)/.test(device.path))
    .map((device) => device.path);
}
