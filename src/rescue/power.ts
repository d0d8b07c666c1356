// The end of a rescue session: reboot into the restored system, power off, or stay.
import { execa } from 'execa';
import type { AfterAction } from './cmdline.js';

export async function finish(after: AfterAction): Promise<void> {
  if (after === 'shell') return;
  // Disk caches are flushed by the writer's fsync; sync again for anything else.
  await execa('sync', [], { reject: false });
  await execa('systemctl', ['--no-block', after], { reject: false });
}
