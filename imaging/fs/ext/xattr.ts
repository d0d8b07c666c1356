// Extended attributes: the entries stored after the inode's extra fields and in the
// external attribute block, named with their Linux prefixes, and ext4's compact POSIX
// ACLs converted to the wire format the kernel hands to getfattr.
import { FormatError } from '../../../src/core/errors.js';
import { crc32cRaw, crc32cU64 } from './checksums.js';
import type { Inode } from './inode.js';
import type { Superblock } from './superblock.js';

const XATTR_MAGIC = 0xea020000;
const BLOCK_HEADER_SIZE = 32;
const ENTRY_HEADER_SIZE = 16;

export const XattrIndex = {
  user: 1,
  posixAclAccess: 2,
  posixAclDefault: 3,
  trusted: 4,
  security: 6,
  system: 7,
  richacl: 8,
  encryption: 9,
  hurd: 10,
} as const;

export interface RawXattr {
  index: number;
  /** The name after its prefix ('data' for system.data). */
  suffix: string;
  /** The value, or the inode holding it (ea_inode). */
  value: Buffer | { inode: number; size: number };
}

function parseEntries(
  bytes: Buffer,
  entriesStart: number,
  valueBase: number,
  end: number,
  where: string,
  superblock: Superblock,
): RawXattr[] {
  const fail = (problem: string): never => {
    throw new FormatError(`${where}: ${problem}`);
  };
  const result: RawXattr[] = [];
  let at = entriesStart;
  for (;;) {
    if (at + 4 > end) fail(`attribute entries run past the end at byte ${at}`);
    if (bytes.readUInt32LE(at) === 0) break;
    if (at + ENTRY_HEADER_SIZE > end) fail(`attribute entry at byte ${at} runs past the end`);
    const nameLength = bytes.readUInt8(at);
    const index = bytes.readUInt8(at + 1);
    const valueOffset = bytes.readUInt16LE(at + 2);
    const valueInode = bytes.readUInt32LE(at + 4);
    const valueSize = bytes.readUInt32LE(at + 8);
    if (at + ENTRY_HEADER_SIZE + nameLength > end)
      fail(`attribute entry at byte ${at} has a name of ${nameLength} bytes that does not fit`);
    const suffix = bytes.subarray(at + ENTRY_HEADER_SIZE, at + ENTRY_HEADER_SIZE + nameLength).toString('utf8');
    if (valueInode !== 0) {
      if (!superblock.has.eaInode)
        fail(`attribute ${suffix} keeps its value in inode ${valueInode} without the ea_inode feature`);
      result.push({ index, suffix, value: { inode: valueInode, size: valueSize } });
    } else {
      const start = valueBase + valueOffset;
      if (valueSize > 0 && (start < entriesStart || start + valueSize > end))
        fail(`the ${valueSize}-byte value of attribute ${suffix} at byte ${start} does not fit`);
      result.push({ index, suffix, value: Buffer.from(bytes.subarray(start, start + valueSize)) });
    }
    at += (ENTRY_HEADER_SIZE + nameLength + 3) & ~3;
  }
  return result;
}

/** Attributes kept in the inode body, after i_extra_isize. */
export function inodeXattrs(inode: Inode, superblock: Superblock): RawXattr[] {
  const start = 128 + inode.extraIsize;
  if (superblock.inodeSize <= 128 || start + 4 > inode.raw.length) return [];
  if (inode.raw.readUInt32LE(start) !== XATTR_MAGIC) return [];
  return parseEntries(
    inode.raw,
    start + 4,
    start + 4,
    inode.raw.length,
    `inode ${inode.number} at byte ${inode.offset}: in-inode attributes`,
    superblock,
  );
}

/** Attributes of the external block `blockNumber` (already read into `bytes`). */
export function blockXattrs(bytes: Buffer, blockNumber: number, superblock: Superblock): RawXattr[] {
  const where = `attribute block ${blockNumber} at byte ${blockNumber * superblock.blockSize}`;
  const magic = bytes.readUInt32LE(0);
  if (magic !== XATTR_MAGIC) throw new FormatError(`${where}: bad magic 0x${magic.toString(16)}`);
  const blocks = bytes.readUInt32LE(8);
  if (blocks !== 1) throw new FormatError(`${where}: claims to span ${blocks} blocks`);
  if (superblock.has.metadataCsum) {
    const copy = Buffer.from(bytes);
    copy.writeUInt32LE(0, 0x10);
    const computed = crc32cRaw(crc32cU64(superblock.checksumSeed, blockNumber), copy);
    const stored = bytes.readUInt32LE(0x10);
    if (computed !== stored)
      throw new FormatError(
        `${where}: checksum 0x${stored.toString(16)} does not match the contents (0x${computed.toString(16)})`,
      );
  }
  return parseEntries(bytes, BLOCK_HEADER_SIZE, 0, bytes.length, where, superblock);
}

/**
 * The name Linux shows for an attribute, or null for those it keeps to itself
 * (system.data of inline files, encryption contexts, richacl, Lustre's).
 */
export function xattrName(entry: RawXattr, hurd: boolean): string | null {
  switch (entry.index) {
    case XattrIndex.user:
      return `user.${entry.suffix}`;
    case XattrIndex.posixAclAccess:
      return 'system.posix_acl_access';
    case XattrIndex.posixAclDefault:
      return 'system.posix_acl_default';
    case XattrIndex.trusted:
      return `trusted.${entry.suffix}`;
    case XattrIndex.security:
      return `security.${entry.suffix}`;
    case XattrIndex.hurd:
      return hurd ? `gnu.${entry.suffix}` : null;
    default:
      return null;
  }
}

const ACL_USER_OBJ = 0x01;
const ACL_USER = 0x02;
const ACL_GROUP_OBJ = 0x04;
const ACL_GROUP = 0x08;
const ACL_MASK = 0x10;
const ACL_OTHER = 0x20;
const EXT4_ACL_VERSION = 1;
const POSIX_ACL_XATTR_VERSION = 2;
const ACL_UNDEFINED_ID = 0xffffffff;

/** ext4's on-disk ACL (short entries without an id) to the Linux xattr format (version 2, 8-byte entries). */
export function aclToXattr(value: Buffer, where: string): Buffer {
  const fail = (problem: string): never => {
    throw new FormatError(`${where}: ${problem}`);
  };
  if (value.length < 4 || value.readUInt32LE(0) !== EXT4_ACL_VERSION) fail('ACL has an unknown version');
  const entries: { tag: number; perm: number; id: number }[] = [];
  for (let at = 4; at < value.length; ) {
    if (at + 4 > value.length) fail(`ACL entry at byte ${at} is truncated`);
    const tag = value.readUInt16LE(at);
    const perm = value.readUInt16LE(at + 2);
    if (tag === ACL_USER || tag === ACL_GROUP) {
      if (at + 8 > value.length) fail(`ACL entry at byte ${at} is truncated`);
      entries.push({ tag, perm, id: value.readUInt32LE(at + 4) });
      at += 8;
    } else if (tag === ACL_USER_OBJ || tag === ACL_GROUP_OBJ || tag === ACL_MASK || tag === ACL_OTHER) {
      entries.push({ tag, perm, id: ACL_UNDEFINED_ID });
      at += 4;
    } else {
      fail(`ACL entry at byte ${at} has unknown tag 0x${tag.toString(16)}`);
    }
  }
  const result = Buffer.alloc(4 + entries.length * 8);
  result.writeUInt32LE(POSIX_ACL_XATTR_VERSION, 0);
  entries.forEach((entry, index) => {
    result.writeUInt16LE(entry.tag, 4 + index * 8);
    result.writeUInt16LE(entry.perm, 6 + index * 8);
    result.writeUInt32LE(entry.id, 8 + index * 8);
  });
  return result;
}
