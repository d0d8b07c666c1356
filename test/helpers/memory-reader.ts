// A volume or disk held in memory as a BlockReader, so that damaged copies cost nothing on
// disk and each variant is a Buffer. Reads outside the bytes fail as on a device, or, for
// readers that must never ask, as a RangeError that no UserError check accepts.
import { type BlockReader, checkRange } from '../../imaging/block-reader.js';

export interface MemoryReaderOptions {
  /** A read outside the bytes is the caller's bug (RangeError), not bad input (FormatError, as a device). */
  outOfRangeIsBug?: boolean;
}

export class MemoryBlockReader implements BlockReader {
  readonly size: number;

  constructor(
    readonly bytes: Buffer,
    readonly description = 'memory disk',
    private readonly options: MemoryReaderOptions = {},
  ) {
    this.size = bytes.length;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (this.options.outOfRangeIsBug && (offset < 0 || length < 0 || offset + length > this.size))
      throw new RangeError(`read of ${length} at ${offset} outside ${this.size}`);
    checkRange(this, offset, length);
    return Buffer.from(this.bytes.subarray(offset, offset + length));
  }
}
