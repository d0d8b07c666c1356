// The DOS (MBR) partition table: four entries in sector 0, and for an extended
// partition the chain of extended boot records (EBRs) that holds the logical ones.
// Reading follows Linux and fdisk: logical partitions are numbered from 5 in chain order.
import { FormatError } from '../../src/core/errors.js';
import type { Partition } from '../../src/format/manifest.js';
import type { BlockReader } from '../block-reader.js';

export const MBR_DISK_ID_OFFSET = 440;
export const MBR_ENTRIES_OFFSET = 446;
export const MBR_ENTRY_SIZE = 16;
export const MBR_SIGNATURE_OFFSET = 510;
/** The part of sector 0 that holds a table: what a boot loader must leave alone. */
export const MBR_TABLE_BYTES = 512;
export const GPT_PROTECTIVE_TYPE = 0xee;
/** CHS/LBA extended (0x05), LBA extended (0x0f), Linux extended (0x85). */
export const EXTENDED_TYPES: ReadonlySet<number> = new Set([0x05, 0x0f, 0x85]);
/** The type libfdisk gives the links between EBRs. */
export const EBR_LINK_TYPE = 0x05;
export const FIRST_LOGICAL_NUMBER = 5;
/** The manifest's limit on partition numbers; also stops a chain that never ends. */
export const MAX_PARTITION_NUMBER = 1024;
/** Entries hold 32-bit sector numbers. */
export const MAX_MBR_SECTORS = 0xffffffff;

export interface MbrEntry {
  /** 1 to 4. */
  slot: number;
  status: number;
  type: number;
  startLba: number;
  sectors: number;
}

export function hasMbrSignature(sector: Buffer): boolean {
  return sector.length >= 512 && sector[MBR_SIGNATURE_OFFSET] === 0x55 && sector[MBR_SIGNATURE_OFFSET + 1] === 0xaa;
}

export function parseMbrEntries(sector: Buffer): MbrEntry[] {
  return [0, 1, 2, 3].map((index) => {
    const offset = MBR_ENTRIES_OFFSET + index * MBR_ENTRY_SIZE;
    return {
      slot: index + 1,
      status: sector[offset]!,
      type: sector[offset + 4]!,
      startLba: sector.readUInt32LE(offset + 8),
      sectors: sector.readUInt32LE(offset + 12),
    };
  });
}

/** Linux and libfdisk count an entry as a partition when it has a size. */
export function isUsedEntry(entry: MbrEntry): boolean {
  return entry.sectors !== 0;
}

export function mbrTypeText(type: number): string {
  return `0x${type.toString(16).padStart(2, '0')}`;
}

/** A manifest's MBR type ('0x83'; '83' is accepted too) as a byte. */
export function parseMbrType(text: string): number {
  const match = /^(?:0x)?([0-9a-fA-F]{1,2})$/.exec(text);
  if (!match) throw new FormatError(`MBR partition type ${JSON.stringify(text)} is not one byte in hex`);
  return parseInt(match[1]!, 16);
}

// CHS values are only for BIOSes older than LBA; every tool now writes them from the
// LBA with 255 heads and 63 sectors per track, and the largest address when the LBA
// is beyond what CHS can say.
const HEADS = 255;
const SECTORS_PER_TRACK = 63;
const LAST_CHS_LBA = 1024 * HEADS * SECTORS_PER_TRACK - 1;

/** The three CHS bytes (head, sector with cylinder bits 8-9, cylinder bits 0-7) of an LBA. */
export function chsBytes(lba: number, beyond: readonly number[] = [0xfe, 0xff, 0xff]): number[] {
  if (lba > LAST_CHS_LBA) return [...beyond];
  const sector = (lba % SECTORS_PER_TRACK) + 1;
  const track = Math.floor(lba / SECTORS_PER_TRACK);
  const head = track % HEADS;
  const cylinder = Math.floor(track / HEADS);
  return [head, sector | ((cylinder >> 2) & 0xc0), cylinder & 0xff];
}

export interface MbrEntryValues {
  bootable: boolean;
  type: number;
  /** As stored: relative to the EBR (logical) or the extended partition (links). */
  startLba: number;
  sectors: number;
  /** Where the entry really starts on the disk, for its CHS values. */
  absoluteStartLba: number;
  /** CHS bytes for an end beyond CHS reach; UEFI wants 0xffffff for the protective entry. */
  chsBeyond?: readonly number[];
}

/** One 16-byte entry, written into `sector` at slot `slot` (1 to 4). */
export function encodeMbrEntry(sector: Buffer, slot: number, values: MbrEntryValues): void {
  const offset = MBR_ENTRIES_OFFSET + (slot - 1) * MBR_ENTRY_SIZE;
  const entry = Buffer.alloc(MBR_ENTRY_SIZE);
  if (values.sectors > 0) {
    entry[0] = values.bootable ? 0x80 : 0x00;
    entry.set(chsBytes(values.absoluteStartLba, values.chsBeyond), 1);
    entry[4] = values.type;
    entry.set(chsBytes(values.absoluteStartLba + values.sectors - 1, values.chsBeyond), 5);
    entry.writeUInt32LE(values.startLba, 8);
    entry.writeUInt32LE(values.sectors, 12);
  }
  entry.copy(sector, offset);
}

/**
 * A FAT, exFAT or NTFS boot sector also ends in 0x55AA: a filesystem written to the
 * whole disk, without a partition table.
 */
export function looksLikeFilesystemBootSector(sector: Buffer): boolean {
  const jump = (sector[0] === 0xeb && sector[2] === 0x90) || sector[0] === 0xe9;
  if (!jump) return false;
  const oem = sector.toString('latin1', 3, 11);
  if (oem === 'NTFS    ' || oem === 'EXFAT   ') return true;
  if (
    sector.toString('latin1', 54, 59) === 'FAT12' ||
    sector.toString('latin1', 54, 59) === 'FAT16' ||
    sector.toString('latin1', 82, 87) === 'FAT32'
  )
    return true;
  const bytesPerSector = sector.readUInt16LE(11);
  const sectorsPerCluster = sector[13]!;
  const fats = sector[16]!;
  const media = sector[21]!;
  const powerOfTwo = (value: number) => value > 0 && (value & (value - 1)) === 0;
  return (
    bytesPerSector >= 512 &&
    bytesPerSector <= 4096 &&
    powerOfTwo(bytesPerSector) &&
    powerOfTwo(sectorsPerCluster) &&
    (fats === 1 || fats === 2) &&
    (media === 0xf0 || media >= 0xf8) &&
    sector.readUInt16LE(14) > 0
  );
}

function primaryPartition(entry: MbrEntry, sectorSize: number): Partition {
  return {
    number: entry.slot,
    kind: EXTENDED_TYPES.has(entry.type) ? 'extended' : 'primary',
    start: entry.startLba * sectorSize,
    size: entry.sectors * sectorSize,
    type: mbrTypeText(entry.type),
    bootable: entry.status === 0x80,
  };
}

/**
 * The partitions of an MBR disk: the four primary entries (extended ones included,
 * as kind 'extended') and the logical partitions of the first extended partition.
 */
export async function readMbrPartitions(
  reader: BlockReader,
  sectorSize: number,
  entries: MbrEntry[],
  warnings: string[],
): Promise<Partition[]> {
  const diskSectors = Math.floor(reader.size / sectorSize);
  const partitions: Partition[] = [];
  let container: MbrEntry | undefined;
  for (const entry of entries.filter(isUsedEntry)) {
    const where = `MBR entry ${entry.slot} (byte ${MBR_ENTRIES_OFFSET + (entry.slot - 1) * MBR_ENTRY_SIZE})`;
    if (entry.startLba === 0)
      throw new FormatError(`${reader.description}: ${where} starts at sector 0, on top of the partition table`);
    if (entry.startLba + entry.sectors > diskSectors)
      warnings.push(
        `partition ${entry.slot} (sectors ${entry.startLba}-${entry.startLba + entry.sectors - 1}) ends past the end of the ${diskSectors}-sector disk`,
      );
    partitions.push(primaryPartition(entry, sectorSize));
    if (EXTENDED_TYPES.has(entry.type)) {
      // libfdisk and sfdisk follow only the first; the rest is kept whole as a gap.
      if (container)
        warnings.push(
          `extended partition ${entry.slot} is a second extended partition: its logical partitions are not listed and it is kept as raw space`,
        );
      else container = entry;
    }
  }
  if (container) partitions.push(...(await readLogicalPartitions(reader, sectorSize, container, warnings)));
  return partitions;
}

async function readLogicalPartitions(
  reader: BlockReader,
  sectorSize: number,
  container: MbrEntry,
  warnings: string[],
): Promise<Partition[]> {
  const diskSectors = Math.floor(reader.size / sectorSize);
  const containerEnd = container.startLba + container.sectors;
  const describeContainer = `extended partition ${container.slot} (bytes ${container.startLba * sectorSize}-${containerEnd * sectorSize - 1})`;
  const logical: Partition[] = [];
  const visited = new Set<number>();
  let number = FIRST_LOGICAL_NUMBER;
  let ebrLba = container.startLba;
  for (;;) {
    const ebrOffset = ebrLba * sectorSize;
    if (visited.has(ebrLba))
      throw new FormatError(
        `${reader.description}: the EBR chain of ${describeContainer} loops: it comes back to the EBR at byte ${ebrOffset}`,
      );
    visited.add(ebrLba);
    if (ebrLba >= diskSectors)
      throw new FormatError(
        `${reader.description}: the EBR at byte ${ebrOffset} of ${describeContainer} is past the end of the disk`,
      );
    const sector = await reader.read(ebrOffset, sectorSize);
    if (!hasMbrSignature(sector)) {
      // An extended partition with no logical partitions may have a blank first EBR.
      if (ebrLba !== container.startLba || sector.some((byte) => byte !== 0))
        warnings.push(`the EBR at byte ${ebrOffset} has no 0x55AA signature: the logical partitions end there`);
      break;
    }
    let data: MbrEntry | undefined;
    let link: MbrEntry | undefined;
    for (const entry of parseMbrEntries(sector)) {
      if (!isUsedEntry(entry) || entry.type === 0) continue;
      if (EXTENDED_TYPES.has(entry.type)) {
        if (link) warnings.push(`the EBR at byte ${ebrOffset} has a second link (entry ${entry.slot}): ignored`);
        else link = entry;
      } else if (data) {
        warnings.push(`the EBR at byte ${ebrOffset} has a second partition (entry ${entry.slot}): ignored`);
      } else {
        data = entry;
      }
    }
    if (data) {
      if (number > MAX_PARTITION_NUMBER)
        throw new FormatError(
          `${reader.description}: ${describeContainer} has more than ${MAX_PARTITION_NUMBER - FIRST_LOGICAL_NUMBER + 1} logical partitions`,
        );
      const startLba = ebrLba + data.startLba;
      if (data.startLba === 0 || startLba + data.sectors > containerEnd) {
        warnings.push(
          `logical partition ${number} (sectors ${startLba}-${startLba + data.sectors - 1}, EBR at byte ${ebrOffset}) does not lie inside ${describeContainer}`,
        );
      }
      logical.push({
        number,
        kind: 'logical',
        start: startLba * sectorSize,
        size: data.sectors * sectorSize,
        type: mbrTypeText(data.type),
        bootable: data.status === 0x80,
        ebrOffset,
      });
      number++;
    } else if (link) {
      warnings.push(`the EBR at byte ${ebrOffset} holds no partition, only a link to the next EBR`);
    }
    if (!link) break;
    const next = container.startLba + link.startLba;
    if (next >= containerEnd) {
      throw new FormatError(
        `${reader.description}: the EBR at byte ${ebrOffset} links to an EBR at byte ${next * sectorSize}, outside ${describeContainer}`,
      );
    }
    ebrLba = next;
  }
  return logical;
}
