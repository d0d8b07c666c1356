// What a file is, beyond file or directory, the way ntfs-3g shows it: Interix special
// files (what ntfs-3g itself creates: symlinks, devices, FIFOs and sockets flagged
// "system"), reparse points (Windows symbolic links and junctions, WSL special files),
// and reparse tags it cannot interpret (shown as a symlink to a message, as ntfs-3g does).
import type { FileType } from '../filesystem.js';
import { FileAttribute } from './attributes.js';
import { ByteView } from './byte-view.js';
import { AttributeType } from './mft-record.js';
import type { NtfsInode } from './mft.js';

export interface FileKind {
  type: FileType;
  /** Size as ntfs-3g reports it: the target's UTF-8 length for symlinks. */
  size: number | null;
  linkTarget?: string;
  rdev?: number;
  /** Permission bits when not the default 0777: ntfs-3g gives WSL special files none. */
  mode?: number;
}

const INTERIX_MAGIC = {
  symlink: 'IntxLNK\x01',
  charDevice: 'IntxCHR\x00',
  blockDevice: 'IntxBLK\x00',
} as const;
const INTERIX_DEVICE_SIZE = 24;
/** ntfs-3g looks for Interix data only in files up to this size (header + PATH_MAX UTF-16 units). */
const INTERIX_MAX_SIZE = 8 + 2 * 4096;

const ReparseTag = {
  mountPoint: 0xa0000003,
  symlink: 0xa000000c,
  wslSymlink: 0xa000001d,
  wslSocket: 0x80000023,
  wslFifo: 0x80000024,
  wslCharDevice: 0x80000025,
  wslBlockDevice: 0x80000026,
} as const;
const SYMLINK_IS_RELATIVE = 0x1;
/** Reparse data is at most 16 KiB; extended attributes at most 64 KiB each. */
const MAX_REPARSE_BYTES = 16 << 10;
const MAX_EA_BYTES = 1 << 20;
const RECALL_ON_OPEN = 0x00040000;

/** Linux dev_t for (major, minor), as stat reports st_rdev. */
export function makeDevice(major: number, minor: number): number {
  return (minor & 0xff) + (major & 0xfff) * 0x100 + (minor & ~0xff) * 0x1000 + Math.floor(major / 0x1000) * 2 ** 44;
}

function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** A symlink pointing at a message, as ntfs-3g shows reparse points it does not know. */
function unsupportedReparse(tag: number): FileKind {
  const target = `unsupported reparse tag 0x${tag.toString(16).padStart(8, '0')}`;
  return { type: 'symlink', size: utf8Length(target), linkTarget: target };
}

/** Classify a file by its reparse point or Interix data; null = ordinary file or directory. */
export async function specialKind(inode: NtfsInode, fileAttributes: number): Promise<FileKind | null> {
  if (fileAttributes & FileAttribute.reparsePoint) return reparseKind(inode, fileAttributes);
  if (inode.record.isDirectory || !(fileAttributes & FileAttribute.system)) return null;
  return interixKind(inode, fileAttributes);
}

async function interixKind(inode: NtfsInode, fileAttributes: number): Promise<FileKind | null> {
  const data = inode.data(AttributeType.data);
  if (!data) return null;
  if (!(fileAttributes & FileAttribute.hidden)) {
    if (data.size === 0) return { type: 'fifo', size: 0 };
    if (data.size === 1) return { type: 'socket', size: 1 };
  }
  if (data.size <= 8 || data.size > INTERIX_MAX_SIZE || data.isEncrypted) return null;
  const bytes = await data.readAll(INTERIX_MAX_SIZE);
  const magic = bytes.toString('latin1', 0, 8);
  if (
    (magic === INTERIX_MAGIC.charDevice || magic === INTERIX_MAGIC.blockDevice) &&
    data.size === INTERIX_DEVICE_SIZE
  ) {
    const major = Number(bytes.readBigUInt64LE(8) & 0xffffffffn);
    const minor = Number(bytes.readBigUInt64LE(16) & 0xffffffffn);
    return {
      type: magic === INTERIX_MAGIC.charDevice ? 'char-device' : 'block-device',
      size: data.size,
      rdev: makeDevice(major, minor),
    };
  }
  if (magic === INTERIX_MAGIC.symlink) {
    const target = bytes.toString('utf16le', 8, 8 + Math.floor((data.size - 8) / 2) * 2);
    return { type: 'symlink', size: utf8Length(target), linkTarget: target };
  }
  return null;
}

async function reparseKind(inode: NtfsInode, fileAttributes: number): Promise<FileKind> {
  const reparse = inode.data(AttributeType.reparsePoint);
  if (!reparse) return unsupportedReparse(0);
  const view = new ByteView(await reparse.readAll(MAX_REPARSE_BYTES), `${inode.label}, $REPARSE_POINT`, null);
  const tag = view.u32(0, 'reparse tag');
  const dataLength = view.u16(4, 'reparse data length');
  if (8 + dataLength > view.length)
    throw view.error(4, `reparse data length ${dataLength} runs past the ${view.length}-byte attribute`);
  switch (tag) {
    case ReparseTag.symlink:
    case ReparseTag.mountPoint: {
      const pathBufferOffset = tag === ReparseTag.symlink ? 20 : 16;
      const substituteOffset = view.u16(8);
      const substituteLength = view.u16(10);
      const flags = tag === ReparseTag.symlink ? view.u32(16) : 0;
      if (pathBufferOffset + substituteOffset + substituteLength > 8 + dataLength || substituteLength % 2 !== 0) {
        throw view.error(8, 'reparse target runs past the reparse data');
      }
      const windowsTarget = view.utf16(pathBufferOffset + substituteOffset, substituteLength / 2, 'reparse target');
      const target = windowsLinkTarget(
        windowsTarget,
        tag === ReparseTag.symlink && (flags & SYMLINK_IS_RELATIVE) !== 0,
      );
      return { type: 'symlink', size: utf8Length(target), linkTarget: target };
    }
    case ReparseTag.wslSymlink: {
      if (dataLength < 4 || view.u32(8) !== 2) return unsupportedReparse(tag);
      const target = view.slice(12, dataLength - 4).toString('utf8');
      return { type: 'symlink', size: utf8Length(target), linkTarget: target };
    }
    case ReparseTag.wslSocket:
    case ReparseTag.wslFifo:
    case ReparseTag.wslCharDevice:
    case ReparseTag.wslBlockDevice: {
      // As ntfs-3g: valid only with no reparse data and the recall-on-open flag.
      if (dataLength !== 0 || !(fileAttributes & RECALL_ON_OPEN)) return unsupportedReparse(tag);
      if (tag === ReparseTag.wslSocket) return { type: 'socket', size: null, mode: 0 };
      if (tag === ReparseTag.wslFifo) return { type: 'fifo', size: null, mode: 0 };
      const rdev = await wslDevice(inode);
      if (rdev === null) return unsupportedReparse(tag);
      return { type: tag === ReparseTag.wslCharDevice ? 'char-device' : 'block-device', size: null, rdev, mode: 0 };
    }
    default:
      return unsupportedReparse(tag);
  }
}

/**
 * A Windows link target as a path: relative targets with '/' separators; absolute
 * ones ("\??\C:\dir") as "C:/dir", since where that drive is mounted is not known here.
 */
function windowsLinkTarget(target: string, relative: boolean): string {
  let path = target;
  if (!relative && path.startsWith('\\??\\')) path = path.slice(4);
  return path.replaceAll('\\', '/');
}

/** Major and minor of a WSL device, from its "$LXDEV" extended attribute. */
async function wslDevice(inode: NtfsInode): Promise<number | null> {
  const ea = inode.data(AttributeType.ea);
  if (!ea) return null;
  const view = new ByteView(await ea.readAll(MAX_EA_BYTES), `${inode.label}, $EA`, null);
  let offset = 0;
  while (offset + 8 <= view.length) {
    const next = view.u32(offset);
    const nameLength = view.u8(offset + 5);
    const valueLength = view.u16(offset + 6);
    if (nameLength === 6 && valueLength === 8 && view.slice(offset + 8, 6).toString('latin1') === '$LXDEV') {
      const value = offset + 8 + nameLength + 1;
      return makeDevice(view.u32(value), view.u32(value + 4));
    }
    if (next === 0) break;
    offset += next;
  }
  return null;
}
