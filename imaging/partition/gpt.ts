// The GUID partition table (UEFI specification, chapter 5): a header at LBA 1 and its
// entry array, with a backup copy at the end of the disk. Both copies are checked
// (CRC32s, positions, sizes); a damaged primary falls back to an intact backup.
// GPT's CRC32 is zlib's (IEEE 802.3, reflected polynomial 0xEDB88320).
import { crc32 } from 'node:zlib';
import { FormatError } from '../../src/core/errors.js';
import type { Partition, PartitionTable } from '../../src/format/manifest.js';
import type { BlockReader } from '../block-reader.js';
import { decodeGuid, encodeGuid, ZERO_GUID } from './guid.js';
import { MAX_PARTITION_NUMBER } from './mbr.js';

export const GPT_SIGNATURE = 'EFI PART';
export const GPT_REVISION = 0x00010000;
export const GPT_HEADER_SIZE = 92;
export const GPT_MIN_ENTRY_SIZE = 128;
/** Where the primary entry array starts on nearly every disk. */
export const GPT_DEFAULT_ENTRIES_LBA = 2;
const NAME_OFFSET = 56;
const NAME_BYTES = 72;
/** Far beyond any real table (128 × 128 bytes); a header asking for more is not believed. */
const MAX_ENTRY_ARRAY_BYTES = 16 << 20;

export interface GptHeader {
  myLba: number;
  alternateLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  diskGuid: string;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
  entriesCrc: number;
}

export function entryArraySectors(entryCount: number, entrySize: number, sectorSize: number): number {
  return Math.ceil((entryCount * entrySize) / sectorSize);
}

function readLba(bytes: Buffer, offset: number): number | null {
  const value = bytes.readBigUInt64LE(offset);
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(value);
}

const hex32 = (value: number) => `0x${value.toString(16).padStart(8, '0')}`;

/** A header read from LBA `lba`, or what is wrong with it. */
export function parseGptHeader(sector: Buffer, lba: number, sectorSize: number): GptHeader | string {
  if (sector.toString('latin1', 0, 8) !== GPT_SIGNATURE) return `no "${GPT_SIGNATURE}" signature`;
  const headerSize = sector.readUInt32LE(12);
  if (headerSize < GPT_HEADER_SIZE || headerSize > sectorSize)
    return `header size ${headerSize} is outside ${GPT_HEADER_SIZE}-${sectorSize}`;
  const storedCrc = sector.readUInt32LE(16);
  const copy = Buffer.from(sector.subarray(0, headerSize));
  copy.writeUInt32LE(0, 16);
  const computedCrc = crc32(copy);
  if (storedCrc !== computedCrc)
    return `header CRC32 mismatch (stored ${hex32(storedCrc)}, computed ${hex32(computedCrc)})`;
  const fields = [24, 32, 40, 48, 72].map((offset) => readLba(sector, offset));
  const [myLba, alternateLba, firstUsableLba, lastUsableLba, entriesLba] = fields;
  if (
    myLba === null ||
    alternateLba === null ||
    firstUsableLba === null ||
    lastUsableLba === null ||
    entriesLba === null
  )
    return 'an LBA field is beyond 2^53';
  if (myLba !== lba) return `header says it is at LBA ${myLba}`;
  const entryCount = sector.readUInt32LE(80);
  const entrySize = sector.readUInt32LE(84);
  if (entrySize < GPT_MIN_ENTRY_SIZE || (entrySize & (entrySize - 1)) !== 0)
    return `partition entry size ${entrySize} is not 128 × 2^n`;
  if (entryCount * entrySize > MAX_ENTRY_ARRAY_BYTES)
    return `${entryCount} entries of ${entrySize} bytes make an implausibly large entry array`;
  if (firstUsableLba > lastUsableLba + 1)
    return `first usable LBA ${firstUsableLba} is after last usable LBA ${lastUsableLba}`;
  const entriesEnd = entriesLba + entryArraySectors(entryCount, entrySize, sectorSize);
  if (entriesLba === 0 || (entriesLba <= lba && lba < entriesEnd))
    return `its partition entries (LBA ${entriesLba}-${entriesEnd - 1}) overlap the MBR or the header`;
  if (entriesLba <= lastUsableLba && firstUsableLba < entriesEnd)
    return `its partition entries (LBA ${entriesLba}-${entriesEnd - 1}) overlap the usable area (LBA ${firstUsableLba}-${lastUsableLba})`;
  return {
    myLba,
    alternateLba,
    firstUsableLba,
    lastUsableLba,
    diskGuid: decodeGuid(sector, 56),
    entriesLba,
    entryCount,
    entrySize,
    entriesCrc: sector.readUInt32LE(88),
  };
}

/** A header sector (the rest of the sector zero), with its CRC32. */
export function encodeGptHeader(header: GptHeader, sectorSize: number): Buffer {
  const sector = Buffer.alloc(sectorSize);
  sector.write(GPT_SIGNATURE, 0, 'latin1');
  sector.writeUInt32LE(GPT_REVISION, 8);
  sector.writeUInt32LE(GPT_HEADER_SIZE, 12);
  sector.writeBigUInt64LE(BigInt(header.myLba), 24);
  sector.writeBigUInt64LE(BigInt(header.alternateLba), 32);
  sector.writeBigUInt64LE(BigInt(header.firstUsableLba), 40);
  sector.writeBigUInt64LE(BigInt(header.lastUsableLba), 48);
  encodeGuid(header.diskGuid, sector, 56);
  sector.writeBigUInt64LE(BigInt(header.entriesLba), 72);
  sector.writeUInt32LE(header.entryCount, 80);
  sector.writeUInt32LE(header.entrySize, 84);
  sector.writeUInt32LE(header.entriesCrc, 88);
  sector.writeUInt32LE(crc32(sector.subarray(0, GPT_HEADER_SIZE)), 16);
  return sector;
}

/** The used entries of an entry array, numbered by their slot (slot 0 is partition 1). */
export function parseGptEntries(entries: Buffer, header: GptHeader, sectorSize: number, where: string): Partition[] {
  const partitions: Partition[] = [];
  for (let index = 0; index < header.entryCount; index++) {
    const offset = index * header.entrySize;
    const type = decodeGuid(entries, offset);
    if (type === ZERO_GUID) continue;
    const number = index + 1;
    const entryWhere = `${where}: entry ${number} (byte ${offset} of the entry array)`;
    if (number > MAX_PARTITION_NUMBER)
      throw new FormatError(`${entryWhere} is in use; at most ${MAX_PARTITION_NUMBER} partitions are supported`);
    const firstLba = readLba(entries, offset + 32);
    const lastLba = readLba(entries, offset + 40);
    if (firstLba === null || lastLba === null || (lastLba + 1) * sectorSize > Number.MAX_SAFE_INTEGER)
      throw new FormatError(`${entryWhere} has an LBA beyond what can be addressed`);
    if (lastLba < firstLba)
      throw new FormatError(`${entryWhere} ends (LBA ${lastLba}) before it starts (LBA ${firstLba})`);
    const nameBytes = entries.subarray(offset + NAME_OFFSET, offset + NAME_OFFSET + NAME_BYTES);
    let nameEnd = 0;
    while (nameEnd < NAME_BYTES && nameBytes.readUInt16LE(nameEnd) !== 0) nameEnd += 2;
    partitions.push({
      number,
      kind: 'primary',
      start: firstLba * sectorSize,
      size: (lastLba - firstLba + 1) * sectorSize,
      type,
      guid: decodeGuid(entries, offset + 16),
      name: nameBytes.toString('utf16le', 0, nameEnd),
      attributes: `0x${entries
        .readBigUInt64LE(offset + 48)
        .toString(16)
        .padStart(16, '0')}`,
    });
  }
  return partitions;
}

/** The entry array of a table: each partition in the slot its number names. */
export function encodeGptEntries(
  table: PartitionTable,
  entryCount: number,
  entrySize: number,
  sectorSize: number,
): Buffer {
  const entries = Buffer.alloc(entryCount * entrySize);
  for (const partition of table.partitions) {
    const where = `GPT partition ${partition.number}`;
    if (partition.number < 1 || partition.number > entryCount)
      throw new FormatError(`${where} does not fit in a table of ${entryCount} entries`);
    if (partition.start % sectorSize !== 0 || partition.size % sectorSize !== 0 || partition.size === 0) {
      throw new FormatError(
        `${where} (bytes ${partition.start}+${partition.size}) is not a whole number of ${sectorSize}-byte sectors`,
      );
    }
    const offset = (partition.number - 1) * entrySize;
    encodeGuid(partition.type, entries, offset);
    encodeGuid(partition.guid ?? ZERO_GUID, entries, offset + 16);
    entries.writeBigUInt64LE(BigInt(partition.start / sectorSize), offset + 32);
    entries.writeBigUInt64LE(BigInt((partition.start + partition.size) / sectorSize - 1), offset + 40);
    const attributes = partition.attributes ?? '0x0';
    if (!/^0x[0-9a-fA-F]{1,16}$/.test(attributes))
      throw new FormatError(`${where}: attributes ${JSON.stringify(attributes)} are not a 64-bit hex number`);
    entries.writeBigUInt64LE(BigInt(attributes), offset + 48);
    const name = Buffer.from(partition.name ?? '', 'utf16le');
    if (name.length > NAME_BYTES)
      throw new FormatError(`${where}: name ${JSON.stringify(partition.name)} is longer than 36 UTF-16 code units`);
    name.copy(entries, offset + NAME_OFFSET);
  }
  return entries;
}

type GptCopy = { ok: true; header: GptHeader; entries: Buffer } | { ok: false; header?: GptHeader; problem: string };

async function readGptCopy(
  reader: BlockReader,
  sectorSize: number,
  lba: number,
  which: 'primary' | 'backup',
): Promise<GptCopy> {
  const diskSectors = Math.floor(reader.size / sectorSize);
  const place = `${which} GPT header at LBA ${lba}`;
  if (lba >= diskSectors)
    return { ok: false, problem: `the ${place} is past the end of the ${diskSectors}-sector disk` };
  const parsed = parseGptHeader(await reader.read(lba * sectorSize, sectorSize), lba, sectorSize);
  if (typeof parsed === 'string') return { ok: false, problem: `the ${place} is bad: ${parsed}` };
  const entrySectors = entryArraySectors(parsed.entryCount, parsed.entrySize, sectorSize);
  const entriesEnd = parsed.entriesLba + entrySectors;
  if (entriesEnd > diskSectors)
    return {
      ok: false,
      header: parsed,
      problem: `the entries of the ${place} (LBA ${parsed.entriesLba}-${entriesEnd - 1}) run past the end of the ${diskSectors}-sector disk`,
    };
  const entries = await reader.read(parsed.entriesLba * sectorSize, parsed.entryCount * parsed.entrySize);
  const computed = crc32(entries);
  if (computed !== parsed.entriesCrc) {
    return {
      ok: false,
      header: parsed,
      problem: `the entries of the ${place} (LBA ${parsed.entriesLba}) fail their CRC32 (stored ${hex32(parsed.entriesCrc)}, computed ${hex32(computed)})`,
    };
  }
  return { ok: true, header: parsed, entries };
}

/** Sector sizes a GPT could have been written with, when the given one finds none. */
async function otherSectorSizeHint(reader: BlockReader, sectorSize: number): Promise<string> {
  for (const other of [512, 4096]) {
    if (other === sectorSize || reader.size < 2 * other) continue;
    const sector = await reader.read(other, 8);
    if (sector.toString('latin1') === GPT_SIGNATURE)
      return ` (a GPT header sits at LBA 1 for ${other}-byte sectors: the table was written for ${other}-byte sectors, the disk has ${sectorSize})`;
  }
  return '';
}

function describeDifferences(primary: GptHeader, backup: GptHeader): string[] {
  const fields = ['diskGuid', 'firstUsableLba', 'lastUsableLba', 'entryCount', 'entrySize', 'entriesCrc'] as const;
  return fields
    .filter((field) => primary[field] !== backup[field])
    .map((field) => `${field} ${primary[field]} vs ${backup[field]}`);
}

type UsableCopy = GptCopy & { ok: true };

/** The first usable backup: where the primary says it is, else at the last LBA; with why the others were not. */
async function readBackup(reader: BlockReader, sectorSize: number, primary: GptCopy) {
  const diskSectors = Math.floor(reader.size / sectorSize);
  // The primary says where its backup is; a disk copied onto a larger one keeps it there.
  const backupLbas = [
    ...new Set(
      [primary.header?.alternateLba, diskSectors - 1].filter((lba): lba is number => lba !== undefined && lba > 1),
    ),
  ];
  const problems: string[] = [];
  for (const lba of backupLbas) {
    const copy = await readGptCopy(reader, sectorSize, lba, 'backup');
    if (copy.ok) return { backup: copy, problems };
    problems.push(copy.problem);
  }
  if (backupLbas.length === 0) problems.push(`the ${diskSectors}-sector disk has no room for a backup GPT`);
  return { backup: undefined, problems };
}

/** Where an intact primary and its backup disagree, as warnings. */
function compareWithBackup(primary: UsableCopy, backup: UsableCopy, lastLba: number, warnings: string[]): void {
  if (backup.header.myLba !== primary.header.alternateLba)
    warnings.push(
      `the primary GPT header names LBA ${primary.header.alternateLba} for its backup, but the backup is at LBA ${backup.header.myLba}`,
    );
  else if (backup.header.myLba !== lastLba)
    warnings.push(
      `the backup GPT header is at LBA ${backup.header.myLba}, not at the last LBA ${lastLba}: the disk is larger than its partition table`,
    );
  const differences = describeDifferences(primary.header, backup.header);
  if (differences.length > 0)
    warnings.push(`the primary and backup GPT differ (${differences.join(', ')}); the primary GPT is used`);
}

/** The copy to use: the primary when intact, else the backup; neither is a FormatError. */
async function chooseCopy(reader: BlockReader, sectorSize: number, primary: GptCopy, warnings: string[]) {
  const { backup, problems } = await readBackup(reader, sectorSize, primary);
  if (primary.ok) {
    if (!backup) warnings.push(`the backup GPT is unusable (${problems.join('; ')}); the primary GPT is used`);
    else compareWithBackup(primary, backup, Math.floor(reader.size / sectorSize) - 1, warnings);
    return { chosen: primary, where: `${reader.description}: primary GPT` };
  }
  if (backup) {
    warnings.push(`${primary.problem}; the backup GPT at LBA ${backup.header.myLba} is used`);
    return { chosen: backup, where: `${reader.description}: backup GPT` };
  }
  throw new FormatError(
    `${reader.description}: no usable GPT: ${primary.problem}; ${problems.join('; ')}${await otherSectorSizeHint(reader, sectorSize)}`,
  );
}

/** Warnings for partitions outside the usable area or past the end of the disk. */
function checkPartitionBounds(partitions: Partition[], header: GptHeader, diskSectors: number, sectorSize: number) {
  const warnings: string[] = [];
  for (const partition of partitions) {
    const firstLba = partition.start / sectorSize;
    const endLba = (partition.start + partition.size) / sectorSize - 1;
    if (firstLba < header.firstUsableLba || endLba > header.lastUsableLba) {
      warnings.push(
        `GPT partition ${partition.number} (LBA ${firstLba}-${endLba}) lies outside the usable area (LBA ${header.firstUsableLba}-${header.lastUsableLba})`,
      );
    }
    if (endLba > diskSectors - 1)
      warnings.push(
        `GPT partition ${partition.number} (LBA ${firstLba}-${endLba}) ends past the end of the ${diskSectors}-sector disk`,
      );
  }
  return warnings;
}

/**
 * The GPT of a disk whose sector 0 is a protective or hybrid MBR (or none at all).
 * `pmbr` and `hybridMbr` are filled in by the caller, which read sector 0.
 */
export async function readGpt(reader: BlockReader, sectorSize: number, warnings: string[]): Promise<PartitionTable> {
  const primary = await readGptCopy(reader, sectorSize, 1, 'primary');
  const { chosen, where } = await chooseCopy(reader, sectorSize, primary, warnings);
  const { header } = chosen;
  const partitions = parseGptEntries(chosen.entries, header, sectorSize, where);
  warnings.push(...checkPartitionBounds(partitions, header, Math.floor(reader.size / sectorSize), sectorSize));
  return {
    type: 'gpt',
    diskGuid: header.diskGuid,
    firstUsableLba: header.firstUsableLba,
    lastUsableLba: header.lastUsableLba,
    entryCount: header.entryCount,
    entrySize: header.entrySize,
    entriesLba: primary.header?.entriesLba ?? GPT_DEFAULT_ENTRIES_LBA,
    partitions,
  };
}
