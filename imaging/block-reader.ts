// Random access to the bytes of one volume: a window of a device or image file, or
// (for file-level restore) a volume inside an image in the repository.
import fs from 'node:fs/promises';
import { FormatError } from '../src/core/errors.js';
import { describeDevice, readFully } from './device.js';

export interface BlockReader {
  /** Size of the volume in bytes. */
  readonly size: number;
  /** Exactly `length` bytes at `offset` (relative to the volume start). Throws past the end. */
  read(offset: number, length: number): Promise<Buffer>;
  /** Something to name in error messages: device and volume. */
  readonly description: string;
}

export function checkRange(reader: BlockReader, offset: number, length: number): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > reader.size
  ) {
    throw new FormatError(
      `${reader.description}: read of ${length} bytes at byte ${offset} is outside the ${reader.size}-byte volume`,
    );
  }
}

/** A window [offset, offset + size) of an open device or image file. */
export class DeviceBlockReader implements BlockReader {
  constructor(
    private readonly handle: fs.FileHandle,
    private readonly offset: number,
    readonly size: number,
    readonly description: string,
  ) {}

  static async open(
    file: string,
    offset = 0,
    size?: number,
  ): Promise<{ reader: DeviceBlockReader; close(): Promise<void> }> {
    const handle = await fs.open(file, 'r');
    const total = size ?? (await describeDevice(file)).size - offset;
    const reader = new DeviceBlockReader(handle, offset, total, offset ? `${file} at byte ${offset}` : file);
    return { reader, close: () => handle.close() };
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this, offset, length);
    const buffer = Buffer.allocUnsafe(length);
    await readFully(this.handle, buffer, 0, length, this.offset + offset, this.description);
    return buffer;
  }
}
