// The values of the small attributes the file tree needs: $STANDARD_INFORMATION
// (times, DOS attributes), $FILE_NAME (parent, name and namespace), $ATTRIBUTE_LIST
// entries, and $VOLUME_INFORMATION.
import type { ByteView } from './byte-view.js';

export const FileAttribute = {
  readOnly: 0x0001,
  hidden: 0x0002,
  system: 0x0004,
  archive: 0x0020,
  sparse: 0x0200,
  reparsePoint: 0x0400,
  compressed: 0x0800,
  encrypted: 0x4000,
  /** In $FILE_NAME copies: the file is a directory (has an $I30 index). */
  directoryIndex: 0x10000000,
} as const;

export const FileNameNamespace = {
  posix: 0,
  win32: 1,
  dos: 2,
  win32AndDos: 3,
} as const;

/** 100-nanosecond intervals from 1601-01-01 to 1970-01-01. */
const NT_EPOCH_OFFSET = 116444736000000000n;

/** NT time (100 ns since 1601) as milliseconds since 1970, fraction kept. */
export function ntTimeToMs(ntTime: bigint): number {
  const sinceUnixEpoch = ntTime - NT_EPOCH_OFFSET;
  const whole = sinceUnixEpoch / 10000n;
  return Number(whole) + Number(sinceUnixEpoch - whole * 10000n) / 10000;
}

/** NT time (100 ns ticks since 1601) as Unix nanoseconds: exact. */
export function ntTimeToNs(ntTime: bigint): bigint {
  return (ntTime - NT_EPOCH_OFFSET) * 100n;
}

export interface StandardInformation {
  creationTime: bigint;
  modificationTime: bigint;
  mftChangeTime: bigint;
  accessTime: bigint;
  fileAttributes: number;
}

export function parseStandardInformation(view: ByteView): StandardInformation {
  if (view.length < 48) throw view.error(0, `$STANDARD_INFORMATION is ${view.length} bytes, expected at least 48`);
  return {
    creationTime: view.u64big(0),
    modificationTime: view.u64big(8),
    mftChangeTime: view.u64big(16),
    accessTime: view.u64big(24),
    fileAttributes: view.u32(32),
  };
}

export interface FileName {
  parentRecord: number;
  parentSequence: number;
  creationTime: bigint;
  modificationTime: bigint;
  mftChangeTime: bigint;
  accessTime: bigint;
  dataSize: number;
  fileAttributes: number;
  /** The reparse tag when fileAttributes has reparsePoint. */
  reparseTag: number;
  namespace: number;
  name: string;
}

/** A $FILE_NAME value, also the key of every $I30 index entry. */
export function parseFileName(view: ByteView): FileName {
  if (view.length < 66) throw view.error(0, `$FILE_NAME is ${view.length} bytes, expected at least 66`);
  const parent = view.u64big(0);
  const nameLength = view.u8(64);
  const namespace = view.u8(65);
  if (namespace > 3) throw view.error(65, `file name namespace ${namespace} is invalid`);
  if (nameLength === 0) throw view.error(64, 'file name is empty');
  return {
    parentRecord: Number(parent & 0xffffffffffffn),
    parentSequence: Number(parent >> 48n),
    creationTime: view.u64big(8),
    modificationTime: view.u64big(16),
    mftChangeTime: view.u64big(24),
    accessTime: view.u64big(32),
    dataSize: view.i64(48, 'file size'),
    fileAttributes: view.u32(56),
    reparseTag: view.u32(60),
    namespace,
    name: view.utf16(66, nameLength, 'file name'),
  };
}

export interface AttributeListEntry {
  type: number;
  name: string;
  lowestVcn: number;
  recordNumber: number;
  recordSequence: number;
  instance: number;
}

/** The entries of an $ATTRIBUTE_LIST value: where each attribute extent of the file lives. */
export function parseAttributeList(view: ByteView): AttributeListEntry[] {
  const entries: AttributeListEntry[] = [];
  let offset = 0;
  while (offset + 26 <= view.length) {
    const type = view.u32(offset);
    const length = view.u16(offset + 4, 'attribute list entry length');
    if (length < 26 || offset + length > view.length)
      throw view.error(offset + 4, `attribute list entry length ${length} is invalid`);
    const nameLength = view.u8(offset + 6);
    const nameOffset = view.u8(offset + 7);
    if (nameLength > 0 && nameOffset + nameLength * 2 > length)
      throw view.error(offset + 7, 'attribute list entry name runs past the entry');
    const reference = view.u64big(offset + 16);
    entries.push({
      type,
      name: nameLength > 0 ? view.utf16(offset + nameOffset, nameLength) : '',
      lowestVcn: view.i64(offset + 8, 'lowest VCN'),
      recordNumber: Number(reference & 0xffffffffffffn),
      recordSequence: Number(reference >> 48n),
      instance: view.u16(offset + 24),
    });
    offset += length;
  }
  return entries;
}

export interface VolumeInformation {
  majorVersion: number;
  minorVersion: number;
  flags: number;
}

export const VolumeFlag = {
  dirty: 0x0001,
} as const;

export function parseVolumeInformation(view: ByteView): VolumeInformation {
  return { majorVersion: view.u8(8), minorVersion: view.u8(9), flags: view.u16(10) };
}
