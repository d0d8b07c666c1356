// Which partition table a disk has, read into the manifest's PartitionTable: GPT
// (behind a protective or hybrid MBR), MBR with its logical partitions, or none.
// Sector 0 decides, as it does for Linux and libfdisk.
import { FormatError } from '../../src/core/errors.js';
import type { Partition, PartitionTable } from '../../src/format/manifest.js';
import type { BlockReader } from '../block-reader.js';
import { GPT_SIGNATURE, readGpt } from './gpt.js';
import {
  GPT_PROTECTIVE_TYPE,
  MAX_MBR_SECTORS,
  MBR_DISK_ID_OFFSET,
  hasMbrSignature,
  isUsedEntry,
  looksLikeFilesystemBootSector,
  mbrTypeText,
  parseMbrEntries,
  readMbrPartitions,
  type MbrEntry,
} from './mbr.js';

export const SUPPORTED_SECTOR_SIZES: readonly number[] = [512, 1024, 2048, 4096];

export interface ReadTableResult {
  table: PartitionTable;
  /** What is odd but survivable: a damaged backup GPT, a backup away from the disk's end... */
  warnings: string[];
}

const isProtectiveEntry = (entry: MbrEntry) => entry.type === GPT_PROTECTIVE_TYPE && entry.startLba === 1;

const noTable = (warnings: string[]): ReadTableResult => ({ table: { type: 'none', partitions: [] }, warnings });

function hybridEntries(entries: MbrEntry[], sectorSize: number): Partition[] {
  return entries.filter(isUsedEntry).map((entry) => ({
    number: entry.slot,
    kind: 'primary',
    start: entry.startLba * sectorSize,
    size: entry.sectors * sectorSize,
    type: mbrTypeText(entry.type),
    bootable: entry.status === 0x80,
  }));
}

export async function readPartitionTable(reader: BlockReader, sectorSize: number): Promise<ReadTableResult> {
  if (!SUPPORTED_SECTOR_SIZES.includes(sectorSize))
    throw new FormatError(`${reader.description}: unsupported sector size ${sectorSize}`);
  const warnings: string[] = [];
  if (reader.size < sectorSize) return noTable(warnings);
  const diskSectors = Math.floor(reader.size / sectorSize);
  const head = await reader.read(0, Math.min(2, diskSectors) * sectorSize);
  const sector0 = head.subarray(0, sectorSize);
  const gptAtLba1 =
    head.length >= 2 * sectorSize && head.toString('latin1', sectorSize, sectorSize + 8) === GPT_SIGNATURE;

  if (!hasMbrSignature(sector0)) {
    if (!gptAtLba1) return noTable(warnings);
    // Linux wants a protective MBR before it believes a GPT; a restore writes one back.
    try {
      const table = await readGpt(reader, sectorSize, warnings);
      warnings.unshift(
        'sector 0 holds no protective MBR (no 0x55AA signature) in front of the GPT; a restore writes one',
      );
      return { table: { ...table, pmbr: 'protective' }, warnings };
    } catch (error) {
      if (!(error instanceof FormatError)) throw error;
      return noTable([
        `sector 0 has no partition table and the GPT header at LBA 1 is unusable (${error.message}): read as a disk without a partition table`,
      ]);
    }
  }

  const entries = parseMbrEntries(sector0);
  const used = entries.filter(isUsedEntry);

  // Like Linux and libfdisk: a GPT is announced by a 0xEE entry starting at LBA 1.
  if (used.some(isProtectiveEntry)) {
    const table = await readGpt(reader, sectorSize, warnings);
    const hybrid = used.some((entry) => entry.type !== GPT_PROTECTIVE_TYPE);
    if (hybrid) return { table: { ...table, pmbr: 'hybrid', hybridMbr: hybridEntries(entries, sectorSize) }, warnings };
    const protective = used.find(isProtectiveEntry)!;
    const expectedSectors = Math.min(diskSectors - 1, MAX_MBR_SECTORS);
    if (protective.sectors !== expectedSectors)
      warnings.push(`the protective MBR covers sectors 1-${protective.sectors}, not 1-${expectedSectors} of this disk`);
    return { table: { ...table, pmbr: 'protective' }, warnings };
  }

  const badStatus = entries.find((entry) => entry.status !== 0x00 && entry.status !== 0x80);
  if (badStatus) {
    if (!looksLikeFilesystemBootSector(sector0)) {
      warnings.push(
        `sector 0 ends in 0x55AA but MBR entry ${badStatus.slot} has status byte 0x${badStatus.status.toString(16).padStart(2, '0')} (not 0x00 or 0x80): read as a disk without a partition table`,
      );
    }
    return noTable(warnings);
  }
  if (
    looksLikeFilesystemBootSector(sector0) &&
    (used.length === 0 || used.some((entry) => entry.startLba === 0 || entry.startLba + entry.sectors > diskSectors))
  ) {
    return noTable(warnings);
  }
  if (gptAtLba1)
    warnings.push(
      'a GPT header at LBA 1 without a protective MBR is ignored: the disk is read as MBR, as Linux and fdisk read it',
    );
  const partitions = await readMbrPartitions(reader, sectorSize, entries, warnings);
  return {
    table: { type: 'mbr', diskId: sector0.readUInt32LE(MBR_DISK_ID_OFFSET).toString(16).padStart(8, '0'), partitions },
    warnings,
  };
}
