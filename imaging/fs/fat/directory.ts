// FAT directory entries: 32-byte short (8.3) entries, the VFAT long-name entries in front
// of them, and the volume label. Untrusted bytes become typed entries here or fail with
// a FormatError naming the directory and the entry's byte offset.
//
// Timestamps: FAT stores wall-clock date and time with no zone. We read them as UTC, so
// a time shows the same digits as `mdir`/`mcopy -m` print when run with TZ=UTC; a volume
// written on a machine in another zone is off by that zone's offset, which nothing on
// the volume can tell us.
import { FormatError } from '../../../src/core/errors.js';
import type { FatGeometry } from './boot-sector.js';
import { decodeOem } from './codepage.js';

export const ATTR_READ_ONLY = 0x01;
export const ATTR_VOLUME_ID = 0x08;
export const ATTR_DIRECTORY = 0x10;
const ATTR_LONG_NAME_MASK = 0x3f;
const ATTR_LONG_NAME = 0x0f;
const ENTRY_BYTES = 32;
const END_OF_DIRECTORY = 0x00;
const DELETED = 0xe5;
/** A short name starting with 0xE5 is stored with 0x05 so it does not read as deleted. */
const KANJI_E5 = 0x05;
const LAST_LONG_ENTRY = 0x40;
/** NT stores all-lowercase 8.3 names as uppercase plus these flags in byte 12. */
const LOWERCASE_BASE = 0x08;
const LOWERCASE_EXTENSION = 0x10;
/** 1980-01-01 00:00:00 UTC, the earliest moment FAT can record. */
const DOS_EPOCH_MS = Date.UTC(1980, 0, 1);

export interface FatDirEntry {
  /** The long name when a valid one precedes the short entry, else the short name. */
  name: string;
  /** The 8.3 name as stored, with the NT lowercase flags applied. */
  shortName: string;
  attributes: number;
  isDirectory: boolean;
  firstCluster: number;
  size: number;
  mtimeMs: number;
  atimeMs: number;
  /** Byte offset of the short entry in the volume: unique, so it serves as inode number. */
  entryOffset: number;
}

/** Where the pieces of a directory's bytes sit in the volume, in order. */
export interface DirectoryPiece {
  volumeOffset: number;
  length: number;
}

/** Maps positions in a directory's concatenated bytes to volume offsets, for increasing positions. */
class PieceMap {
  private index = 0;
  private pieceStart = 0;
  constructor(private readonly pieces: readonly DirectoryPiece[]) {}

  volumeOffset(position: number): number {
    while (this.index < this.pieces.length - 1 && position >= this.pieceStart + this.pieces[this.index]!.length) {
      this.pieceStart += this.pieces[this.index]!.length;
      this.index++;
    }
    return this.pieces[this.index]!.volumeOffset + (position - this.pieceStart);
  }
}

/** The checksum of an 11-byte short name that every long-name entry of the set repeats. */
export function shortNameChecksum(name: Uint8Array): number {
  let sum = 0;
  for (let index = 0; index < 11; index++) sum = (((sum & 1) << 7) + (sum >> 1) + name[index]!) & 0xff;
  return sum;
}

/** The 13 UTF-16 code units one long-name entry carries, at bytes 1-10, 14-25 and 28-31. */
function longNameUnits(entry: Buffer): number[] {
  const units: number[] = [];
  for (const [start, end] of [
    [1, 11],
    [14, 26],
    [28, 32],
  ] as const) {
    for (let offset = start; offset < end; offset += 2) units.push(entry.readUInt16LE(offset));
  }
  return units;
}

function decodeLongName(units: number[]): string | null {
  const terminator = units.indexOf(0);
  const used = terminator >= 0 ? units.slice(0, terminator) : units;
  // After the terminator the rest is padded with 0xFFFF; anything else means a damaged set.
  if (terminator >= 0 && units.slice(terminator + 1).some((unit) => unit !== 0xffff)) return null;
  if (used.length === 0) return null;
  const encoded = Buffer.alloc(used.length * 2);
  for (const [index, unit] of used.entries()) encoded.writeUInt16LE(unit, index * 2);
  const name = encoded.toString('utf16le');
  if (name.includes('/') || name === '.' || name === '..') return null;
  return name;
}

function shortName(raw: Buffer, flags: number): string {
  const bytes = Buffer.from(raw.subarray(0, 11));
  if (bytes[0] === KANJI_E5) bytes[0] = DELETED;
  let base = decodeOem(bytes.subarray(0, 8)).replace(/ +$/, '');
  let extension = decodeOem(bytes.subarray(8, 11)).replace(/ +$/, '');
  if (flags & LOWERCASE_BASE) base = base.toLowerCase();
  if (flags & LOWERCASE_EXTENSION) extension = extension.toLowerCase();
  return extension ? `${base}.${extension}` : base;
}

/** FAT date and time words read as UTC (see the module comment); impossible fields are clamped, never thrown on. */
export function dosTimeMs(date: number, time = 0): number {
  if (date === 0) return DOS_EPOCH_MS;
  const year = 1980 + (date >> 9);
  const month = Math.max(1, (date >> 5) & 0x0f);
  const day = Math.max(1, date & 0x1f);
  const hours = time >> 11;
  const minutes = (time >> 5) & 0x3f;
  const seconds = (time & 0x1f) * 2;
  return Date.UTC(year, month - 1, day, hours, minutes, seconds);
}

function isDotEntry(entry: Buffer): boolean {
  return (
    entry[0] === 0x2e &&
    (entry.subarray(1, 11).every((byte) => byte === 0x20) ||
      (entry[1] === 0x2e && entry.subarray(2, 11).every((byte) => byte === 0x20)))
  );
}

/** Collects the long-name entries in front of a short entry: their parts by ordinal and the checksum they share. */
class LongNameSet {
  private parts: number[][] | null = null;
  private checksum = 0;
  /** The ordinal the next part must carry; 0 once the set is complete. */
  private expectedOrdinal = 0;

  add(entry: Buffer): void {
    const first = entry[0]!;
    const ordinal = first & 0x1f;
    if (first & LAST_LONG_ENTRY && ordinal >= 1 && ordinal <= 20) {
      this.parts = new Array<number[]>(ordinal);
      this.parts[ordinal - 1] = longNameUnits(entry);
      this.checksum = entry[13]!;
      this.expectedOrdinal = ordinal - 1;
    } else if (this.parts && ordinal === this.expectedOrdinal && ordinal >= 1 && entry[13] === this.checksum) {
      this.parts[ordinal - 1] = longNameUnits(entry);
      this.expectedOrdinal--;
    } else {
      // An orphan or out-of-order part: the set is broken, the short name will do.
      this.parts = null;
    }
  }

  discard(): void {
    this.parts = null;
  }

  /** The long name of the short entry that ends the set, or null when the set is broken or absent; the set is emptied. */
  take(shortEntry: Buffer): string | null {
    const parts = this.parts;
    this.parts = null;
    if (!parts || this.expectedOrdinal !== 0 || this.checksum !== shortNameChecksum(shortEntry)) return null;
    return decodeLongName(parts.flat());
  }
}

/** Refuse a short entry whose name or cluster fields cannot be real. */
function checkShortEntry(entry: Buffer, geometry: FatGeometry, fail: (problem: string) => never): void {
  for (let index = 0; index < 11; index++) {
    const byte = entry[index]!;
    if ((byte < 0x20 && !(index === 0 && byte === KANJI_E5)) || byte === 0x2f || (index === 0 && byte === 0x20)) {
      fail(`short name has the invalid byte 0x${byte.toString(16).padStart(2, '0')} at position ${index}`);
    }
  }
  const isDirectory = (entry[11]! & ATTR_DIRECTORY) !== 0;
  const size = entry.readUInt32LE(28);
  const firstCluster = firstClusterOf(entry, geometry);
  const short = shortName(entry, entry[12]!);
  const maxFileBytes = geometry.clusterCount * geometry.clusterSize;
  if (firstCluster !== 0 && (firstCluster < 2 || firstCluster > geometry.clusterCount + 1)) {
    fail(`"${short}" starts at cluster ${firstCluster}, outside clusters 2..${geometry.clusterCount + 1}`);
  }
  if (isDirectory && firstCluster === 0) fail(`directory "${short}" has no first cluster`);
  if (!isDirectory && size > 0 && firstCluster === 0) fail(`"${short}" holds ${size} bytes but has no first cluster`);
  if (!isDirectory && size > maxFileBytes)
    fail(`"${short}" claims ${size} bytes, more than the ${maxFileBytes}-byte data region`);
}

function firstClusterOf(entry: Buffer, geometry: FatGeometry): number {
  const high = geometry.fatType === 32 ? entry.readUInt16LE(20) : 0;
  return high * 0x10000 + entry.readUInt16LE(26);
}

/** A checked short entry as a typed entry, named by its long name when one was found. */
function toDirEntry(entry: Buffer, geometry: FatGeometry, longName: string | null, entryOffset: number): FatDirEntry {
  const attributes = entry[11]!;
  const isDirectory = (attributes & ATTR_DIRECTORY) !== 0;
  const short = shortName(entry, entry[12]!);
  const mtimeMs = dosTimeMs(entry.readUInt16LE(24), entry.readUInt16LE(22));
  // Bytes 13-17 hold the creation time, which FileStat has no place for.
  const accessDate = entry.readUInt16LE(18);
  return {
    name: longName ?? short,
    shortName: short,
    attributes,
    isDirectory,
    firstCluster: firstClusterOf(entry, geometry),
    size: isDirectory ? 0 : entry.readUInt32LE(28),
    mtimeMs,
    atimeMs: accessDate === 0 ? mtimeMs : dosTimeMs(accessDate),
    entryOffset,
  };
}

/**
 * Parse the entries of one directory. `bytes` is the whole directory (the fixed root
 * region, or its cluster chain concatenated), `pieces` where those bytes sit in the
 * volume, `where` names the volume and `path` the directory in errors.
 */
export function parseDirectory(
  bytes: Buffer,
  pieces: readonly DirectoryPiece[],
  geometry: FatGeometry,
  where: string,
  path: string,
): FatDirEntry[] {
  const map = new PieceMap(pieces);
  const entries: FatDirEntry[] = [];
  const longName = new LongNameSet();
  for (let position = 0; position + ENTRY_BYTES <= bytes.length; position += ENTRY_BYTES) {
    const entry = bytes.subarray(position, position + ENTRY_BYTES);
    const first = entry[0]!;
    if (first === END_OF_DIRECTORY) break;
    if (first === DELETED) {
      longName.discard();
      continue;
    }
    const attributes = entry[11]!;
    if ((attributes & ATTR_LONG_NAME_MASK) === ATTR_LONG_NAME) {
      longName.add(entry);
      continue;
    }
    if (attributes & ATTR_VOLUME_ID || isDotEntry(entry)) {
      longName.discard();
      continue;
    }
    const entryOffset = map.volumeOffset(position);
    checkShortEntry(entry, geometry, (problem) => {
      throw new FormatError(`${where}: directory ${path}: entry at byte ${entryOffset}: ${problem}`);
    });
    entries.push(toDirEntry(entry, geometry, longName.take(entry), entryOffset));
  }
  return entries;
}

/**
 * The volume label entry of a root directory, as blkid finds it: the first live entry
 * that is neither a long-name part nor a directory, has the volume attribute and no cluster.
 * Returns the raw 11 bytes, or null when there is none.
 */
export function findLabelEntry(bytes: Buffer): Buffer | null {
  for (let position = 0; position + ENTRY_BYTES <= bytes.length; position += ENTRY_BYTES) {
    const entry = bytes.subarray(position, position + ENTRY_BYTES);
    if (entry[0] === END_OF_DIRECTORY) break;
    if (entry[0] === DELETED || entry.readUInt16LE(20) !== 0 || entry.readUInt16LE(26) !== 0) continue;
    const attributes = entry[11]!;
    if ((attributes & ATTR_LONG_NAME_MASK) === ATTR_LONG_NAME) continue;
    if ((attributes & (ATTR_VOLUME_ID | ATTR_DIRECTORY)) === ATTR_VOLUME_ID) return entry.subarray(0, 11);
  }
  return null;
}
