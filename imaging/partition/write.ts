// Partition tables for restore: a captured table fitted to the target disk (the GPT
// backup moved to its end, the last partition optionally grown), the exact bytes
// to write for it, and the writes that first make a disk look unpartitioned.
import type fsp from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { FormatError, UnsafeTargetError } from '../../src/core/errors.js';
import type { Partition, PartitionTable } from '../../src/format/manifest.js';
import { writeFully } from '../device.js';
import {
  encodeGptEntries,
  encodeGptHeader,
  entryArraySectors,
  GPT_DEFAULT_ENTRIES_LBA,
  type GptHeader,
} from './gpt.js';
import {
  EBR_LINK_TYPE,
  GPT_PROTECTIVE_TYPE,
  MAX_MBR_SECTORS,
  MBR_DISK_ID_OFFSET,
  MBR_ENTRIES_OFFSET,
  MBR_ENTRY_SIZE,
  MBR_SIGNATURE_OFFSET,
  encodeMbrEntry,
  parseMbrEntries,
  parseMbrType,
  type MbrEntryValues,
} from './mbr.js';

export interface DiskGeometry {
  /** Bytes. */
  size: number;
  sectorSize: number;
}

export interface DiskWrite {
  offset: number;
  bytes: Buffer;
}

export interface FitOptions {
  /** Grow the partition that ends last to the end of the disk (GPT: to a 1 MiB boundary, as sfdisk ends partitions). */
  growLastPartition?: boolean;
}

/** libfdisk's grain: partitions end just before a 1 MiB boundary. */
const GRAIN_BYTES = 1 << 20;
const DEFAULT_GPT_ENTRIES = 128;
const DEFAULT_GPT_ENTRY_SIZE = 128;

const describe = (partition: Partition) =>
  `partition ${partition.number} (bytes ${partition.start}-${partition.start + partition.size - 1})`;
const endOf = (partition: Partition) => partition.start + partition.size;

function checkSectorMultiples(partitions: Partition[], target: DiskGeometry): void {
  for (const partition of partitions) {
    for (const [what, value] of [
      ['start', partition.start],
      ['size', partition.size],
      ['EBR', partition.ebrOffset ?? 0],
    ] as const) {
      if (value % target.sectorSize !== 0)
        throw new UnsafeTargetError(
          `${describe(partition)}: its ${what} (byte ${value}) is not on a ${target.sectorSize}-byte sector boundary of the target disk`,
        );
    }
  }
}

function lastDataPartition(table: PartitionTable): Partition | undefined {
  const data = table.partitions.filter((partition) => partition.kind !== 'extended');
  return data.reduce<Partition | undefined>(
    (last, partition) => (!last || endOf(partition) > endOf(last) ? partition : last),
    undefined,
  );
}

function fitGpt(
  table: PartitionTable,
  source: DiskGeometry,
  target: DiskGeometry,
  options: FitOptions,
): PartitionTable {
  const sectorSize = target.sectorSize;
  const entryCount = table.entryCount ?? DEFAULT_GPT_ENTRIES;
  const entrySize = table.entrySize ?? DEFAULT_GPT_ENTRY_SIZE;
  const entrySectors = entryArraySectors(entryCount, entrySize, sectorSize);
  const targetSectors = Math.floor(target.size / sectorSize);
  const sameSectors = source.sectorSize === sectorSize;
  const inTargetSectors = (lba: number) => (sameSectors ? lba : Math.ceil((lba * source.sectorSize) / sectorSize));
  const entriesLba = Math.max(GPT_DEFAULT_ENTRIES_LBA, inTargetSectors(table.entriesLba ?? GPT_DEFAULT_ENTRIES_LBA));
  const firstUsableLba = Math.max(entriesLba + entrySectors, inTargetSectors(table.firstUsableLba ?? 0));
  // The backup entries and header take the last sectors of the target.
  const maxLastUsable = targetSectors - 1 - entrySectors - 1;
  // On a disk of the source's size the captured value stays, so the table comes back byte for byte.
  const keepLastUsable =
    source.size === target.size &&
    sameSectors &&
    table.lastUsableLba !== undefined &&
    table.lastUsableLba <= maxLastUsable;
  const lastUsableLba = keepLastUsable ? table.lastUsableLba! : maxLastUsable;
  if (firstUsableLba > lastUsableLba)
    throw new UnsafeTargetError(
      `the ${target.size}-byte target disk is too small for a GPT with ${entryCount} entries`,
    );
  checkSectorMultiples(table.partitions, target);
  for (const partition of table.partitions) {
    if (partition.start / sectorSize < firstUsableLba || endOf(partition) / sectorSize - 1 > lastUsableLba) {
      throw new UnsafeTargetError(
        `${describe(partition)} does not fit on the ${target.size}-byte target disk: its GPT can hold partitions in LBA ${firstUsableLba}-${lastUsableLba} of ${sectorSize} bytes`,
      );
    }
  }
  const partitions = table.partitions.map((partition) => ({ ...partition }));
  if (options.growLastPartition) {
    const last = lastDataPartition({ ...table, partitions });
    if (last) {
      const grainSectors = Math.max(1, GRAIN_BYTES / sectorSize);
      const alignedEnd = Math.floor((lastUsableLba + 1) / grainSectors) * grainSectors;
      if (alignedEnd * sectorSize > endOf(last)) last.size = alignedEnd * sectorSize - last.start;
    }
  }
  const hybridMbr = table.hybridMbr && fitHybridMbr(table.hybridMbr, source, target);
  return {
    ...table,
    firstUsableLba,
    lastUsableLba,
    entryCount,
    entrySize,
    entriesLba,
    ...(hybridMbr ? { hybridMbr } : {}),
    partitions,
  };
}

/** The 0xEE entry of a hybrid MBR that reached the source's end reaches the target's end. */
function fitHybridMbr(entries: Partition[], source: DiskGeometry, target: DiskGeometry): Partition[] {
  const sourceEnd = Math.min(Math.floor(source.size / source.sectorSize), MAX_MBR_SECTORS + 1) * source.sectorSize;
  const targetSectors = Math.floor(target.size / target.sectorSize);
  return entries.map((entry) => {
    if (
      parseMbrType(entry.type) === GPT_PROTECTIVE_TYPE &&
      entry.start === source.sectorSize &&
      endOf(entry) >= sourceEnd
    ) {
      return {
        ...entry,
        start: target.sectorSize,
        size: Math.min(targetSectors - 1, MAX_MBR_SECTORS) * target.sectorSize,
      };
    }
    if (entry.start % target.sectorSize !== 0 || entry.size % target.sectorSize !== 0 || endOf(entry) > target.size) {
      throw new UnsafeTargetError(
        `hybrid MBR entry ${entry.number} (bytes ${entry.start}-${endOf(entry) - 1}) does not fit on the ${target.size}-byte target disk`,
      );
    }
    return { ...entry };
  });
}

function fitMbr(table: PartitionTable, target: DiskGeometry, options: FitOptions): PartitionTable {
  const sectorSize = target.sectorSize;
  const targetSectors = Math.floor(target.size / sectorSize);
  checkSectorMultiples(table.partitions, target);
  for (const partition of table.partitions) {
    if (endOf(partition) > targetSectors * sectorSize)
      throw new UnsafeTargetError(`${describe(partition)} does not fit on the ${target.size}-byte target disk`);
    if (partition.start / sectorSize > MAX_MBR_SECTORS || partition.size / sectorSize > MAX_MBR_SECTORS) {
      throw new UnsafeTargetError(
        `${describe(partition)} cannot be described by an MBR with ${sectorSize}-byte sectors (32-bit sector numbers)`,
      );
    }
  }
  const partitions = table.partitions.map((partition) => ({ ...partition }));
  if (options.growLastPartition) {
    const last = lastDataPartition({ ...table, partitions });
    if (last) {
      const limitFor = (partition: Partition) =>
        Math.min(targetSectors, partition.start / sectorSize + MAX_MBR_SECTORS) * sectorSize;
      if (last.kind === 'logical') {
        const container = partitions.find(
          (partition) =>
            partition.kind === 'extended' && partition.start <= last.ebrOffset! && last.ebrOffset! < endOf(partition),
        );
        if (container) {
          const containerEnd = Math.max(endOf(container), limitFor(container));
          container.size = containerEnd - container.start;
          last.size = Math.max(last.size, Math.min(containerEnd, limitFor(last)) - last.start);
        }
      } else {
        // An extended partition after it (free, with no logical partitions) stops it.
        const next = partitions
          .filter((partition) => partition.start >= endOf(last))
          .reduce((end, partition) => Math.min(end, partition.start), Infinity);
        last.size = Math.max(last.size, Math.min(limitFor(last), next) - last.start);
      }
    }
  }
  return { ...table, partitions };
}

/**
 * The captured table as it will be on the target disk: a GPT gets the target's last
 * usable LBA; the partition that ends last may grow. A target too small, or with a
 * sector size the offsets do not divide, is refused with UnsafeTargetError.
 */
export function fitTableToDisk(
  table: PartitionTable,
  source: DiskGeometry,
  target: DiskGeometry,
  options: FitOptions = {},
): PartitionTable {
  if (table.type === 'gpt') return fitGpt(table, source, target, options);
  if (table.type === 'mbr') return fitMbr(table, target, options);
  return { ...table, partitions: [] };
}

/**
 * Writes an entry; when the captured sector 0 holds the same entry, its bytes are kept
 * as they were, so the CHS values of whatever tool wrote them survive.
 */
function writeEntry(sector: Buffer, slot: number, values: MbrEntryValues, captured: Buffer | undefined): void {
  const offset = MBR_ENTRIES_OFFSET + (slot - 1) * MBR_ENTRY_SIZE;
  if (captured && values.sectors > 0) {
    const old = parseMbrEntries(captured)[slot - 1]!;
    if (
      old.status === (values.bootable ? 0x80 : 0) &&
      old.type === values.type &&
      old.startLba === values.startLba &&
      old.sectors === values.sectors
    ) {
      captured.copy(sector, offset, offset, offset + MBR_ENTRY_SIZE);
      return;
    }
  }
  encodeMbrEntry(sector, slot, values);
}

function firstSectorBase(firstSector: Buffer | undefined, sectorSize: number): Buffer {
  const sector = Buffer.alloc(sectorSize);
  if (firstSector) {
    if (firstSector.length < 512)
      throw new FormatError(`the captured first sector has ${firstSector.length} bytes, fewer than 512`);
    firstSector.copy(sector, 0, 0, Math.min(firstSector.length, sectorSize));
  }
  sector.fill(0, MBR_ENTRIES_OFFSET, MBR_SIGNATURE_OFFSET);
  sector[MBR_SIGNATURE_OFFSET] = 0x55;
  sector[MBR_SIGNATURE_OFFSET + 1] = 0xaa;
  return sector;
}

function entryValues(partition: Partition, sectorSize: number, relativeTo = 0): MbrEntryValues {
  const startLba = partition.start / sectorSize;
  return {
    bootable: partition.bootable === true,
    type: parseMbrType(partition.type),
    startLba: startLba - relativeTo,
    sectors: partition.size / sectorSize,
    absoluteStartLba: startLba,
  };
}

/** The EBRs of the logical partitions, chained from the extended partition's first sector. */
function ebrChainWrites(container: Partition, logicals: Partition[], sectorSize: number): DiskWrite[] {
  const writes: DiskWrite[] = [];
  const containerLba = container.start / sectorSize;
  const chain: { ebrLba: number; logical?: Partition }[] = logicals.map((logical) => {
    if (
      logical.ebrOffset === undefined ||
      logical.ebrOffset < container.start ||
      logical.ebrOffset >= endOf(container)
    ) {
      throw new FormatError(
        `logical partition ${logical.number} has no EBR inside extended partition ${container.number}`,
      );
    }
    return { ebrLba: logical.ebrOffset / sectorSize, logical };
  });
  // The chain always starts at the extended partition's first sector.
  if (chain[0]?.ebrLba !== containerLba) chain.unshift({ ebrLba: containerLba });
  chain.forEach((link, index) => {
    const ebr = Buffer.alloc(sectorSize);
    if (link.logical) encodeMbrEntry(ebr, 1, entryValues(link.logical, sectorSize, link.ebrLba));
    const next = chain[index + 1];
    if (next) {
      // libfdisk's link spans the next EBR and the partition it holds.
      const nextEnd = next.logical ? endOf(next.logical) / sectorSize : next.ebrLba + 1;
      encodeMbrEntry(ebr, 2, {
        bootable: false,
        type: EBR_LINK_TYPE,
        startLba: next.ebrLba - containerLba,
        sectors: nextEnd - next.ebrLba,
        absoluteStartLba: next.ebrLba,
      });
    }
    ebr[MBR_SIGNATURE_OFFSET] = 0x55;
    ebr[MBR_SIGNATURE_OFFSET + 1] = 0xaa;
    writes.push({ offset: link.ebrLba * sectorSize, bytes: ebr });
  });
  return writes;
}

function mbrWrites(table: PartitionTable, target: DiskGeometry, firstSector: Buffer | undefined): DiskWrite[] {
  const sectorSize = target.sectorSize;
  const sector0 = firstSectorBase(firstSector, sectorSize);
  if (table.diskId !== undefined) {
    if (!/^[0-9a-fA-F]{8}$/.test(table.diskId))
      throw new FormatError(`MBR disk identifier ${JSON.stringify(table.diskId)} is not 8 hex digits`);
    sector0.writeUInt32LE(parseInt(table.diskId, 16), MBR_DISK_ID_OFFSET);
  }
  const primaries = table.partitions.filter((partition) => partition.kind !== 'logical');
  for (const partition of primaries) {
    if (partition.number < 1 || partition.number > 4)
      throw new FormatError(`MBR ${partition.kind} partition ${partition.number} is not in slot 1-4`);
    writeEntry(sector0, partition.number, entryValues(partition, sectorSize), firstSector);
  }
  const writes: DiskWrite[] = [];
  const container = primaries
    .filter((partition) => partition.kind === 'extended')
    .sort((a, b) => a.number - b.number)[0];
  const logicals = table.partitions
    .filter((partition) => partition.kind === 'logical')
    .sort((a, b) => a.number - b.number);
  if (logicals.length > 0 && !container)
    throw new FormatError('the table has logical partitions but no extended partition');
  if (container) writes.push(...ebrChainWrites(container, logicals, sectorSize));
  writes.push({ offset: 0, bytes: sector0 });
  return writes;
}

/** Sector 0 of a GPT disk: a protective MBR over the whole disk, or the captured hybrid MBR. */
function protectiveMbr(
  table: PartitionTable,
  targetSectors: number,
  sectorSize: number,
  firstSector: Buffer | undefined,
): Buffer {
  const pmbr = firstSectorBase(firstSector, sectorSize);
  if (table.pmbr === 'hybrid' && table.hybridMbr?.length) {
    for (const entry of table.hybridMbr) {
      const values = entryValues(entry, sectorSize);
      writeEntry(
        pmbr,
        entry.number,
        values.type === GPT_PROTECTIVE_TYPE ? { ...values, chsBeyond: [0xff, 0xff, 0xff] } : values,
        firstSector,
      );
    }
    return pmbr;
  }
  const sectors = Math.min(targetSectors - 1, MAX_MBR_SECTORS);
  // UEFI: the end CHS is 0xffffff when the last sector is beyond CHS reach.
  writeEntry(
    pmbr,
    1,
    {
      bootable: false,
      type: GPT_PROTECTIVE_TYPE,
      startLba: 1,
      sectors,
      absoluteStartLba: 1,
      chsBeyond: [0xff, 0xff, 0xff],
    },
    firstSector,
  );
  return pmbr;
}

function gptWrites(table: PartitionTable, target: DiskGeometry, firstSector: Buffer | undefined): DiskWrite[] {
  const sectorSize = target.sectorSize;
  const targetSectors = Math.floor(target.size / sectorSize);
  const lastLba = targetSectors - 1;
  const { diskGuid, firstUsableLba, lastUsableLba } = table;
  if (diskGuid === undefined || firstUsableLba === undefined || lastUsableLba === undefined)
    throw new FormatError('the GPT has no disk GUID or usable LBA range');
  const entryCount = table.entryCount ?? DEFAULT_GPT_ENTRIES;
  const entrySize = table.entrySize ?? DEFAULT_GPT_ENTRY_SIZE;
  const entriesLba = table.entriesLba ?? GPT_DEFAULT_ENTRIES_LBA;
  const entrySectors = entryArraySectors(entryCount, entrySize, sectorSize);
  const backupEntriesLba = lastLba - entrySectors;
  if (
    entriesLba < GPT_DEFAULT_ENTRIES_LBA ||
    firstUsableLba < entriesLba + entrySectors ||
    lastUsableLba >= backupEntriesLba
  ) {
    throw new UnsafeTargetError(
      `the GPT (usable LBA ${firstUsableLba}-${lastUsableLba}, entries at LBA ${entriesLba}) does not fit the ${target.size}-byte target disk; fit it first`,
    );
  }
  const entries = encodeGptEntries(table, entryCount, entrySize, sectorSize);
  const entrySectorsBytes = Buffer.alloc(entrySectors * sectorSize);
  entries.copy(entrySectorsBytes);
  const header: GptHeader = {
    myLba: 1,
    alternateLba: lastLba,
    firstUsableLba,
    lastUsableLba,
    diskGuid,
    entriesLba,
    entryCount,
    entrySize,
    entriesCrc: crc32(entries),
  };
  const backup: GptHeader = { ...header, myLba: lastLba, alternateLba: 1, entriesLba: backupEntriesLba };

  const pmbr = protectiveMbr(table, targetSectors, sectorSize, firstSector);
  return [
    { offset: backupEntriesLba * sectorSize, bytes: entrySectorsBytes },
    { offset: lastLba * sectorSize, bytes: encodeGptHeader(backup, sectorSize) },
    { offset: entriesLba * sectorSize, bytes: entrySectorsBytes },
    { offset: sectorSize, bytes: encodeGptHeader(header, sectorSize) },
    { offset: 0, bytes: pmbr },
  ];
}

/**
 * The bytes of `table` (already fitted to the target) on the target disk, in the order
 * to write them: the sector that makes the disk look partitioned comes last. For MBR
 * and for the protective MBR of a GPT, `firstSector` is the captured sector 0 whose
 * boot code and disk signature are kept; without it they are zeros.
 */
export function partitionTableWrites(
  table: PartitionTable,
  target: DiskGeometry,
  options: { firstSector?: Buffer } = {},
): DiskWrite[] {
  if (table.type === 'gpt') return gptWrites(table, target, options.firstSector);
  if (table.type === 'mbr') return mbrWrites(table, target, options.firstSector);
  return [];
}

/** Fit then encode: the table the target will have and the writes that give it that table. */
export function restoreTableWrites(
  table: PartitionTable,
  source: DiskGeometry,
  target: DiskGeometry,
  options: FitOptions & { firstSector?: Buffer } = {},
): { table: PartitionTable; writes: DiskWrite[] } {
  const fitted = fitTableToDisk(table, source, target, options);
  return {
    table: fitted,
    writes: partitionTableWrites(fitted, target, options.firstSector ? { firstSector: options.firstSector } : {}),
  };
}

/**
 * Writes that make the target look unpartitioned before a restore starts: the MBR
 * signature (boot code stays) and both GPT headers. A restore interrupted after these
 * leaves a disk no system mistakes for a finished one.
 */
export function wipeTableSignatures(target: DiskGeometry): DiskWrite[] {
  const sectors = Math.floor(target.size / target.sectorSize);
  const writes: DiskWrite[] = [];
  if (sectors >= 1) writes.push({ offset: MBR_SIGNATURE_OFFSET, bytes: Buffer.alloc(2) });
  if (sectors >= 2) writes.push({ offset: target.sectorSize, bytes: Buffer.alloc(target.sectorSize) });
  if (sectors >= 3) writes.push({ offset: (sectors - 1) * target.sectorSize, bytes: Buffer.alloc(target.sectorSize) });
  return writes;
}

/**
 * `bytes` bound for `offset` on the target, with the areas wipeTableSignatures clears
 * set to zero: gaps captured from the source hold the old table's signatures, and a
 * restore writes those only at the very end, with the table.
 */
export function maskTableSignatures(target: DiskGeometry, offset: number, bytes: Buffer): Buffer {
  let masked = bytes;
  for (const area of wipeTableSignatures(target)) {
    const start = Math.max(offset, area.offset);
    const end = Math.min(offset + bytes.length, area.offset + area.bytes.length);
    if (start >= end) continue;
    if (masked === bytes) masked = Buffer.from(bytes);
    masked.fill(0, start - offset, end - offset);
  }
  return masked;
}

/** Applies writes in order, each in full (see writeFully for short and failed writes). */
export async function applyDiskWrites(handle: fsp.FileHandle, writes: DiskWrite[], what: string): Promise<void> {
  for (const { offset, bytes } of writes) await writeFully(handle, bytes, offset, what);
}
