// Volumes Backup365 recognises but does not read inside (yet): they are captured raw,
// with a warning that says what they are.
import type { BlockReader } from '../block-reader.js';

export interface ForeignVolume {
  kind: 'luks' | 'lvm2' | 'mdraid' | 'bitlocker';
  description: string;
}

async function readAt(reader: BlockReader, offset: number, length: number): Promise<Buffer | null> {
  if (offset + length > reader.size) return null;
  return reader.read(offset, length);
}

export async function detectForeignVolume(reader: BlockReader): Promise<ForeignVolume | null> {
  const head = await readAt(reader, 0, 4096);
  if (!head) return null;
  if (
    head.subarray(0, 6).equals(Buffer.from('LUKS\xba\xbe', 'latin1')) ||
    head.subarray(0, 6).equals(Buffer.from('SKUL\xba\xbe', 'latin1'))
  ) {
    return { kind: 'luks', description: `LUKS${head.readUInt16BE(6)} encrypted volume` };
  }
  // LVM2 puts "LABELONE" in one of the first four sectors, with "LVM2 001" after it.
  for (let sector = 0; sector < 4; sector++) {
    const label = head.subarray(sector * 512, sector * 512 + 32);
    if (label.toString('latin1', 0, 8) === 'LABELONE' && label.toString('latin1', 24, 32) === 'LVM2 001') {
      return { kind: 'lvm2', description: 'LVM2 physical volume' };
    }
  }
  if (head.toString('latin1', 3, 11) === '-FVE-FS-')
    return { kind: 'bitlocker', description: 'BitLocker encrypted volume' };
  const md = await readAt(reader, 4096, 4);
  if (md && md.readUInt32LE(0) === 0xa92b4efc) return { kind: 'mdraid', description: 'Linux software RAID member' };
  return null;
}
