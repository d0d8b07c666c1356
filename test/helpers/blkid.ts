// util-linux's blkid as the oracle for what a volume says it is: type, UUID, label and,
// on a partition, its table entry. Low-level probe (-p), so no cache is consulted.
import { execa } from 'execa';

/** `blkid -p -o export` of a device or image as a map (empty when blkid finds nothing). */
export async function blkid(device: string): Promise<Record<string, string>> {
  const result = await execa('blkid', ['-p', '-o', 'export', device], { reject: false });
  const values: Record<string, string> = {};
  for (const line of String(result.stdout).split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) values[line.slice(0, at)] = line.slice(at + 1);
  }
  // Export format escapes shell characters and spells non-ASCII bytes as "M-x": ask for the label raw.
  if (values.LABEL !== undefined)
    values.LABEL = String((await execa('blkid', ['-p', '-o', 'value', '-s', 'LABEL', device])).stdout);
  return values;
}
