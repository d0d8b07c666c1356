// A source or target disk: a block device or an image file ("a file is a disk").
// Sizes come from lseek, sector sizes and identity from sysfs, holes of sparse files
// from SEEK_DATA/SEEK_HOLE so they are never read.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import fsExt from 'fs-ext';
import { DeviceWriteError, NotFoundError, UsageError } from '../src/core/errors.js';
import { RangeList, type Range } from './ranges.js';

const SEEK_END = 2;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;

export interface DeviceInfo {
  path: string;
  kind: 'block-device' | 'file';
  size: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  model: string | null;
  serial: string | null;
  /** major:minor of a block device. */
  devno: string | null;
}

function readSysfs(file: string): string | null {
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    return text === '' ? null : text;
  } catch {
    return null;
  }
}

/** The sysfs directory of a block device, e.g. /sys/dev/block/7:0. */
export function sysfsOf(devno: string): string {
  return `/sys/dev/block/${devno}`;
}

export async function describeDevice(devicePath: string): Promise<DeviceInfo> {
  let stats: fs.Stats;
  try {
    stats = await fsp.stat(devicePath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`${devicePath} does not exist`);
    throw error;
  }
  if (stats.isFile()) {
    return {
      path: devicePath,
      kind: 'file',
      size: stats.size,
      logicalSectorSize: 512,
      physicalSectorSize: 512,
      model: null,
      serial: null,
      devno: null,
    };
  }
  if (!stats.isBlockDevice()) throw new UsageError(`${devicePath} is neither a block device nor a disk image file`);
  const devno = `${Math.floor(stats.rdev / 256) & 0xfff}:${(stats.rdev & 0xff) | ((stats.rdev >> 12) & 0xfff00)}`;
  const sysfs = sysfsOf(devno);
  const fd = fs.openSync(devicePath, 'r');
  let size: number;
  try {
    size = fsExt.seekSync(fd, 0, SEEK_END);
  } finally {
    fs.closeSync(fd);
  }
  return {
    path: devicePath,
    kind: 'block-device',
    size,
    logicalSectorSize: Number(readSysfs(`${sysfs}/queue/logical_block_size`) ?? 512),
    physicalSectorSize: Number(readSysfs(`${sysfs}/queue/physical_block_size`) ?? 512),
    model: readSysfs(`${sysfs}/device/model`),
    serial: readSysfs(`${sysfs}/device/serial`) ?? readSysfs(`${sysfs}/serial`) ?? readSysfs(`${sysfs}/device/wwid`),
    devno,
  };
}

/**
 * Ranges of [start, end) that may hold data. For a sparse file, the holes the
 * filesystem reports are left out; for a block device, everything may hold data.
 */
export function dataRanges(fd: number, kind: DeviceInfo['kind'], start: number, end: number): RangeList {
  if (kind !== 'file') return RangeList.of([[start, end]]);
  const ranges: Range[] = [];
  let position = start;
  while (position < end) {
    let dataStart: number;
    try {
      dataStart = fsExt.seekSync(fd, position, SEEK_DATA);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENXIO') break;
      return RangeList.of([[start, end]]);
    }
    if (dataStart >= end) break;
    let holeStart: number;
    try {
      holeStart = fsExt.seekSync(fd, dataStart, SEEK_HOLE);
    } catch {
      holeStart = end;
    }
    ranges.push([dataStart, Math.min(holeStart, end)]);
    position = holeStart;
  }
  return RangeList.of(ranges);
}

/** Read exactly `length` bytes at `position`, failing clearly on a short read. */
export async function readFully(
  handle: fsp.FileHandle,
  buffer: Buffer,
  offset: number,
  length: number,
  position: number,
  what: string,
): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buffer, offset + done, length - done, position + done);
    if (bytesRead === 0) throw new UsageError(`${what}: unexpected end of device at byte ${position + done}`);
    done += bytesRead;
  }
}

/**
 * Write all of `buffer` at `position`, going on after a short write. A write that takes
 * no bytes, or one the kernel refuses (no space, I/O error, past the end of a device),
 * fails with an error naming the device and the byte, never a loop.
 */
export async function writeFully(
  handle: fsp.FileHandle,
  buffer: Buffer,
  position: number,
  what: string,
): Promise<void> {
  let done = 0;
  while (done < buffer.length) {
    const bytesWritten = await writeOnce(handle, buffer, done, position + done, what);
    if (bytesWritten === 0)
      throw new DeviceWriteError(
        `${what}: the write at byte ${position + done} took no bytes (the device is full or at its end)`,
      );
    done += bytesWritten;
  }
}

async function writeOnce(
  handle: fsp.FileHandle,
  buffer: Buffer,
  from: number,
  at: number,
  what: string,
): Promise<number> {
  try {
    return (await handle.write(buffer, from, buffer.length - from, at)).bytesWritten;
  } catch (error) {
    // Only what the device or its filesystem answers; a misused handle (EBADF) is a defect, kept raw.
    const reason = WRITE_FAILURES[(error as NodeJS.ErrnoException).code ?? ''];
    if (reason === undefined) throw error;
    throw new DeviceWriteError(`${what}: cannot write at byte ${at}: ${reason}`, { cause: error });
  }
}

const WRITE_FAILURES: Record<string, string> = {
  ENOSPC: 'no space left (a full filesystem, or past the end of the device)',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'the file would exceed its maximum size',
  EIO: 'I/O error',
  EROFS: 'read-only',
  ENXIO: 'no such device (was it removed?)',
};
