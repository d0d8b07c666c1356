// The FAT boot sector (BIOS parameter block): parsed and checked in this one place
// into the geometry every other part of the FAT module works from.
// Field offsets and the cluster-count rule follow Microsoft's FAT specification (fatgen103).
import { FormatError } from '../../../src/core/errors.js';
import { decodeOem } from './codepage.js';

export type FatType = 12 | 16 | 32;

export interface FatGeometry {
  fatType: FatType;
  bytesPerSector: number;
  sectorsPerCluster: number;
  clusterSize: number;
  reservedSectors: number;
  fatCount: number;
  sectorsPerFat: number;
  mediaByte: number;
  totalSectors: number;
  /** Bytes of the filesystem: total sectors times sector size. */
  totalBytes: number;
  /** Byte offset of the first FAT and the length of one FAT copy. */
  fatOffset: number;
  fatBytes: number;
  /** The FAT copy to read (FAT32 can switch mirroring off and name one). */
  activeFat: number;
  /** FAT12/16: the fixed root directory region. Zero length on FAT32. */
  rootDirOffset: number;
  rootDirBytes: number;
  /** Byte offset of cluster 2. */
  dataOffset: number;
  /** Clusters 2 .. clusterCount + 1 exist. */
  clusterCount: number;
  /** FAT32: first cluster of the root directory; 0 otherwise. */
  rootCluster: number;
  /** FAT32: sector numbers inside the reserved region, or null when absent. */
  fsInfoSector: number | null;
  backupBootSector: number | null;
  /** Volume serial number (extended boot signature 0x28/0x29), null without one. */
  serial: number | null;
}

export interface ParsedBootSector {
  geometry: FatGeometry;
  warnings: string[];
}

/** Fewer clusters than this is FAT12, fewer than FAT32_MIN_CLUSTERS is FAT16 (fatgen103). */
export const FAT16_MIN_CLUSTERS = 4085;
export const FAT32_MIN_CLUSTERS = 65525;
/** FAT32 entries are 28 bits and the top values are reserved, bad and end-of-chain marks. */
const FAT32_MAX_CLUSTERS = 0x0ffffff5;

const isPowerOfTwo = (value: number) => value > 0 && (value & (value - 1)) === 0;

/**
 * A cheap test used by detect(): does this first sector have the shape of a FAT boot
 * sector? NTFS and exFAT fail it because they keep the FAT count and sizes zero.
 */
export function looksLikeFatBootSector(sector: Buffer): boolean {
  if (sector.length < 512) return false;
  if (sector[0] !== 0xeb && sector[0] !== 0xe9) return false;
  const bytesPerSector = sector.readUInt16LE(11);
  const sectorsPerCluster = sector[13]!;
  const media = sector[21]!;
  return (
    isPowerOfTwo(bytesPerSector) &&
    bytesPerSector >= 512 &&
    bytesPerSector <= 4096 &&
    isPowerOfTwo(sectorsPerCluster) &&
    sector.readUInt16LE(14) > 0 &&
    sector[16]! > 0 &&
    (media === 0xf0 || media >= 0xf8) &&
    (sector.readUInt16LE(19) > 0 || sector.readUInt32LE(32) > 0) &&
    (sector.readUInt16LE(22) > 0 || sector.readUInt32LE(36) > 0)
  );
}

type Fail = (offset: number, problem: string) => never;

/** The BIOS parameter block fields every FAT type shares (bytes 11-35). */
interface BiosParameters {
  bytesPerSector: number;
  sectorsPerCluster: number;
  reservedSectors: number;
  fatCount: number;
  rootEntryCount: number;
  totalSectors16: number;
  mediaByte: number;
  sectorsPerFat16: number;
  totalSectors: number;
}

function readBiosParameters(sector: Buffer, fail: Fail): BiosParameters {
  if (sector[0] !== 0xeb && sector[0] !== 0xe9) fail(0, `jump instruction is 0x${hex(sector[0]!)}, not 0xEB or 0xE9`);
  const bytesPerSector = sector.readUInt16LE(11);
  if (!isPowerOfTwo(bytesPerSector) || bytesPerSector < 512 || bytesPerSector > 4096) {
    fail(11, `bytes per sector is ${bytesPerSector}, not a power of two from 512 to 4096`);
  }
  const sectorsPerCluster = sector[13]!;
  if (!isPowerOfTwo(sectorsPerCluster))
    fail(13, `sectors per cluster is ${sectorsPerCluster}, not a power of two from 1 to 128`);
  const reservedSectors = sector.readUInt16LE(14);
  if (reservedSectors === 0) fail(14, 'reserved sector count is 0, it must include the boot sector');
  const fatCount = sector[16]!;
  if (fatCount === 0) fail(16, 'number of FATs is 0');
  const rootEntryCount = sector.readUInt16LE(17);
  const totalSectors16 = sector.readUInt16LE(19);
  const mediaByte = sector[21]!;
  if (mediaByte !== 0xf0 && mediaByte < 0xf8)
    fail(21, `media descriptor is 0x${hex(mediaByte)}, not 0xF0 or 0xF8-0xFF`);
  const sectorsPerFat16 = sector.readUInt16LE(22);
  const totalSectors = totalSectors16 !== 0 ? totalSectors16 : sector.readUInt32LE(32);
  if (totalSectors === 0) fail(19, 'total sector count is 0 in both the 16-bit (byte 19) and 32-bit (byte 32) fields');
  return {
    bytesPerSector,
    sectorsPerCluster,
    reservedSectors,
    fatCount,
    rootEntryCount,
    totalSectors16,
    mediaByte,
    sectorsPerFat16,
    totalSectors,
  };
}

/** Where the FATs, the fixed root directory and the data region lie, and how many clusters fit. */
interface Regions {
  /** A zero 16-bit FAT size: the FAT32 layout (see readRegions). */
  fat32Layout: boolean;
  sectorsPerFat: number;
  totalBytes: number;
  dataStartSector: number;
  clusterCount: number;
}

function readRegions(sector: Buffer, bpb: BiosParameters, volumeSize: number, fail: Fail): Regions {
  const { bytesPerSector, fatCount, rootEntryCount, totalSectors } = bpb;
  // Linux, dosfstools and blkid read a zero 16-bit FAT size as "this is FAT32", whatever
  // the cluster count; Microsoft's cluster-count rule decides between FAT12 and FAT16.
  const fat32Layout = bpb.sectorsPerFat16 === 0;
  const sectorsPerFat = fat32Layout ? sector.readUInt32LE(36) : bpb.sectorsPerFat16;
  if (sectorsPerFat === 0) fail(36, 'sectors per FAT is 0 in both the 16-bit (byte 22) and 32-bit (byte 36) fields');
  if (fat32Layout && rootEntryCount !== 0)
    fail(17, `FAT32 volume declares ${rootEntryCount} fixed root directory entries, it must be 0`);
  if (!fat32Layout && rootEntryCount === 0) fail(17, 'FAT12/16 volume has no root directory entries');

  const totalBytes = totalSectors * bytesPerSector;
  if (totalBytes > volumeSize) {
    fail(
      bpb.totalSectors16 !== 0 ? 19 : 32,
      `the filesystem claims ${totalSectors} sectors (${totalBytes} bytes) but the volume holds only ${volumeSize} bytes`,
    );
  }
  const rootDirSectors = Math.ceil((rootEntryCount * 32) / bytesPerSector);
  const dataStartSector = bpb.reservedSectors + fatCount * sectorsPerFat + rootDirSectors;
  if (dataStartSector >= totalSectors) {
    fail(
      fat32Layout ? 36 : 22,
      `reserved sectors, ${fatCount} FATs of ${sectorsPerFat} sectors and the root directory end at sector ${dataStartSector}, beyond the ${totalSectors} sectors of the filesystem`,
    );
  }
  const clusterCount = Math.floor((totalSectors - dataStartSector) / bpb.sectorsPerCluster);
  if (clusterCount === 0) fail(13, 'the data region holds no whole cluster');
  return { fat32Layout, sectorsPerFat, totalBytes, dataStartSector, clusterCount };
}

/** FAT12, 16 or 32, and a FAT large enough for every cluster. */
function fatTypeOf(regions: Regions, bytesPerSector: number, warnings: string[], fail: Fail): FatType {
  const { fat32Layout, clusterCount, sectorsPerFat } = regions;
  let fatType: FatType;
  if (fat32Layout) {
    fatType = 32;
    if (clusterCount > FAT32_MAX_CLUSTERS) fail(32, `${clusterCount} clusters, more than FAT32 can address`);
    if (clusterCount < FAT32_MIN_CLUSTERS) {
      warnings.push(
        `FAT32 volume with only ${clusterCount} clusters (the specification asks for at least ${FAT32_MIN_CLUSTERS}); read as FAT32, as Linux and dosfstools do`,
      );
    }
  } else if (clusterCount < FAT16_MIN_CLUSTERS) {
    fatType = 12;
  } else if (clusterCount < FAT32_MIN_CLUSTERS) {
    fatType = 16;
  } else {
    fatType = fail(22, `${clusterCount} clusters need FAT32, but the 16-bit FAT size field is set (FAT12/16 layout)`);
  }
  const fatEntries = Math.floor((sectorsPerFat * bytesPerSector * 8) / fatType);
  if (fatEntries < clusterCount + 2) {
    fail(
      fat32Layout ? 36 : 22,
      `a FAT of ${sectorsPerFat} sectors holds ${fatEntries} entries, too few for ${clusterCount} clusters`,
    );
  }
  return fatType;
}

/** The FAT32 extension of the BPB (bytes 36-63); FAT12/16 have none of it. */
interface Fat32Fields {
  activeFat: number;
  rootCluster: number;
  fsInfoSector: number | null;
  backupBootSector: number | null;
}

function readFat32Fields(sector: Buffer, bpb: BiosParameters, clusterCount: number, fail: Fail): Fat32Fields {
  const { fatCount, reservedSectors } = bpb;
  let activeFat = 0;
  const extendedFlags = sector.readUInt16LE(40);
  if (extendedFlags & 0x80) {
    activeFat = extendedFlags & 0x0f;
    if (activeFat >= fatCount)
      fail(40, `FAT mirroring is off and the active FAT is number ${activeFat}, but there are only ${fatCount}`);
  }
  const version = sector.readUInt16LE(42);
  if (version !== 0) fail(42, `FAT32 version is ${version >> 8}.${version & 0xff}, only 0.0 exists`);
  const rootCluster = sector.readUInt32LE(44);
  if (rootCluster < 2 || rootCluster > clusterCount + 1)
    fail(44, `root directory cluster is ${rootCluster}, outside clusters 2..${clusterCount + 1}`);
  return {
    activeFat,
    rootCluster,
    fsInfoSector: optionalReservedSector(sector.readUInt16LE(48), reservedSectors, 48, 'FSInfo', fail),
    backupBootSector: optionalReservedSector(sector.readUInt16LE(50), reservedSectors, 50, 'backup boot', fail),
  };
}

const NO_FAT32_FIELDS: Fat32Fields = { activeFat: 0, rootCluster: 0, fsInfoSector: null, backupBootSector: null };

/** Parse the first 512 bytes of a volume of `volumeSize` bytes. `where` names the volume. */
export function parseBootSector(sector: Buffer, volumeSize: number, where: string): ParsedBootSector {
  const fail: Fail = (offset, problem) => {
    throw new FormatError(`${where}: FAT boot sector: ${problem} (byte ${offset})`);
  };
  if (sector.length < 512) fail(0, `only ${sector.length} bytes, a boot sector has 512`);
  const warnings: string[] = [];
  const bpb = readBiosParameters(sector, fail);
  const regions = readRegions(sector, bpb, volumeSize, fail);
  const fatType = fatTypeOf(regions, bpb.bytesPerSector, warnings, fail);
  const fat32 = fatType === 32 ? readFat32Fields(sector, bpb, regions.clusterCount, fail) : NO_FAT32_FIELDS;
  // The extended BPB sits after the FAT32 fields on FAT32, right after the BPB otherwise.
  const extended = fatType === 32 ? 64 : 36;
  const signature = sector[extended + 2]!;
  const serial = signature === 0x28 || signature === 0x29 ? sector.readUInt32LE(extended + 3) : null;
  if (sector[510] !== 0x55 || sector[511] !== 0xaa)
    warnings.push('the boot sector lacks the 0x55AA signature at byte 510');
  return { geometry: geometryOf(bpb, regions, fatType, fat32, serial), warnings };
}

function geometryOf(
  bpb: BiosParameters,
  regions: Regions,
  fatType: FatType,
  fat32: Fat32Fields,
  serial: number | null,
): FatGeometry {
  const { bytesPerSector, sectorsPerCluster, reservedSectors, fatCount } = bpb;
  const { sectorsPerFat } = regions;
  return {
    fatType,
    bytesPerSector,
    sectorsPerCluster,
    clusterSize: bytesPerSector * sectorsPerCluster,
    reservedSectors,
    fatCount,
    sectorsPerFat,
    mediaByte: bpb.mediaByte,
    totalSectors: bpb.totalSectors,
    totalBytes: regions.totalBytes,
    fatOffset: reservedSectors * bytesPerSector,
    fatBytes: sectorsPerFat * bytesPerSector,
    activeFat: fat32.activeFat,
    rootDirOffset: (reservedSectors + fatCount * sectorsPerFat) * bytesPerSector,
    rootDirBytes: bpb.rootEntryCount * 32,
    dataOffset: regions.dataStartSector * bytesPerSector,
    clusterCount: regions.clusterCount,
    rootCluster: fat32.rootCluster,
    fsInfoSector: fat32.fsInfoSector,
    backupBootSector: fat32.backupBootSector,
    serial,
  };
}

function optionalReservedSector(
  value: number,
  reservedSectors: number,
  offset: number,
  what: string,
  fail: Fail,
): number | null {
  // 0 and 0xFFFF both mean "there is none".
  if (value === 0 || value === 0xffff) return null;
  if (value >= reservedSectors)
    fail(offset, `${what} sector is ${value}, outside the ${reservedSectors} reserved sectors`);
  return value;
}

/** Check the FSInfo sector's three signatures; its counts are only hints, so a bad one is a warning. */
export function checkFsInfo(sector: Buffer, byteOffset: number): string | null {
  if (
    sector.readUInt32LE(0) === 0x41615252 &&
    sector.readUInt32LE(484) === 0x61417272 &&
    sector.readUInt32LE(508) === 0xaa550000
  )
    return null;
  return `the FSInfo sector at byte ${byteOffset} has wrong signatures; its free-cluster hint is ignored`;
}

/** An 11-byte label as blkid reports it: trailing spaces and NULs trimmed, "NO NAME" and blank mean none. */
export function volumeLabel(bytes: Buffer): string | null {
  const raw = Buffer.from(bytes);
  if (raw[0] === 0x05) raw[0] = 0xe5;
  const text = decodeOem(raw).replace(/[ \0]+$/, '');
  if (text === '' || text === 'NO NAME') return null;
  return text;
}

/** The serial number as blkid prints it: "ABCD-1234". */
export function formatSerial(serial: number): string {
  const text = serial.toString(16).toUpperCase().padStart(8, '0');
  return `${text.slice(0, 4)}-${text.slice(4)}`;
}

function hex(value: number): string {
  return value.toString(16).toUpperCase().padStart(2, '0');
}
