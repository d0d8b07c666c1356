// The Master File Table: records read through $MFT's own runlist in large blocks,
// fixups applied, and files ("inodes") assembled from their base record plus the
// extension records their $ATTRIBUTE_LIST points to.
import type { BlockReader } from '../../block-reader.js';
import { FormatError } from '../../../src/core/errors.js';
import { AttributeData } from './attribute-data.js';
import {
  parseAttributeList,
  parseFileName,
  parseStandardInformation,
  type FileName,
  type StandardInformation,
} from './attributes.js';
import type { BootSector } from './boot-sector.js';
import { ByteView } from './byte-view.js';
import {
  applyFixups,
  AttributeType,
  parseMftRecord,
  RECORD_IN_USE,
  type Attribute,
  type MftRecord,
  type NonResidentInfo,
} from './mft-record.js';
import { Runlist } from './runlist.js';

export const SystemFile = {
  mft: 0,
  mftMirror: 1,
  logFile: 2,
  volume: 3,
  attributeDefinitions: 4,
  root: 5,
  bitmap: 6,
  boot: 7,
  badClusters: 8,
  secure: 9,
  upcase: 10,
  extend: 11,
  /** Records below this one are reserved for the system. */
  firstUser: 16,
} as const;

/** MFT records are read and cached in blocks of this many bytes. */
const BLOCK_BYTES = 256 << 10;
const CACHED_BLOCKS = 16;
const CACHED_INODES = 4096;
/** NTFS caps an attribute list at 256 KiB. */
const MAX_ATTRIBUTE_LIST_BYTES = 256 << 10;

/** One file: its base record and every attribute, wherever it is stored. */
export class NtfsInode {
  constructor(
    readonly mft: Mft,
    readonly record: MftRecord,
    readonly attributes: readonly Attribute[],
  ) {}

  get number(): number {
    return this.record.number;
  }

  get label(): string {
    return `${this.mft.reader.description}: MFT record ${this.record.number}`;
  }

  /** All extents of the attribute of `type` named `name` ('' = unnamed). */
  extents(type: number, name = ''): Attribute[] {
    return this.attributes.filter((attribute) => attribute.type === type && attribute.name === name);
  }

  has(type: number, name = ''): boolean {
    return this.attributes.some((attribute) => attribute.type === type && attribute.name === name);
  }

  /** The contents of an attribute, or null when the file has none. */
  data(type: number, name = ''): AttributeData | null {
    const extents = this.extents(type, name);
    if (extents.length === 0) return null;
    const typeName = type === AttributeType.data ? '$DATA' : `attribute 0x${type.toString(16)}`;
    const label = `${this.label}, ${typeName}${name ? ` "${name}"` : ''}`;
    return AttributeData.fromExtents(this.mft.reader, extents, this.mft.boot.clusterSize, label);
  }

  standardInformation(): StandardInformation | null {
    const attribute = this.attributes.find((candidate) => candidate.type === AttributeType.standardInformation);
    if (!attribute) return null;
    if (!attribute.value) throw attribute.location.error(8, '$STANDARD_INFORMATION is not resident');
    return parseStandardInformation(attribute.value);
  }

  fileNames(): FileName[] {
    return this.attributes
      .filter((attribute) => attribute.type === AttributeType.fileName)
      .map((attribute) => {
        if (!attribute.value) throw attribute.location.error(8, '$FILE_NAME is not resident');
        return parseFileName(attribute.value);
      });
  }
}

export class Mft {
  private readonly blocks = new Map<number, Promise<Buffer>>();
  private readonly inodes = new Map<number, Promise<NtfsInode>>();

  private constructor(
    readonly reader: BlockReader,
    readonly boot: BootSector,
    /** $MFT's $DATA. */
    private readonly runlist: Runlist,
    readonly recordCount: number,
    private readonly initializedSize: number,
  ) {}

  /**
   * Read record 0 at the cluster the boot sector names, then the rest of $MFT's runlist
   * (from extension records when $MFT itself has an attribute list).
   */
  static async open(reader: BlockReader, boot: BootSector): Promise<Mft> {
    const recordSize = boot.mftRecordSize;
    const firstOffset = boot.mftCluster * boot.clusterSize;
    const label = `${reader.description}: $MFT`;
    const record0 = parseRecordBytes(
      await reader.read(firstOffset, recordSize),
      0,
      firstOffset,
      reader.description,
      boot.clusterCount,
    );
    if (!record0.inUse)
      throw new FormatError(`${reader.description}: MFT record 0 at byte ${firstOffset} is not marked in use`);
    const extents = dataExtents(record0);
    const first = extents.find((extent) => extent.lowestVcn === 0);
    if (!first)
      throw new FormatError(
        `${reader.description}: MFT record 0 at byte ${firstOffset} has no non-resident $DATA starting at VCN 0`,
      );
    const joinExtents = (): Runlist => {
      extents.sort((a, b) => a.lowestVcn - b.lowestVcn);
      return new Runlist(
        extents.flatMap((extent) => extent.runs),
        boot.clusterSize,
        label,
      );
    };
    let runlist = joinExtents();
    const list = record0.attributes.find((attribute) => attribute.type === AttributeType.attributeList);
    if (list) {
      // $MFT's extension records are found through the part of its runlist known so far.
      const listData = AttributeData.fromExtents(reader, [list], boot.clusterSize, `${label}, $ATTRIBUTE_LIST`);
      const entries = parseAttributeList(
        new ByteView(await listData.readAll(MAX_ATTRIBUTE_LIST_BYTES), `${label}, $ATTRIBUTE_LIST`, null),
      )
        .filter((entry) => entry.type === AttributeType.data && entry.name === '' && entry.recordNumber !== 0)
        .sort((a, b) => a.lowestVcn - b.lowestVcn);
      const seen = new Set<number>();
      for (const entry of entries) {
        if (seen.has(entry.recordNumber)) continue;
        seen.add(entry.recordNumber);
        const position = entry.recordNumber * recordSize;
        const offset = runlist.volumeOffsetOf(position);
        if (offset === null || runlist.volumeOffsetOf(position + recordSize - 1) !== offset + recordSize - 1) {
          throw new FormatError(
            `${label}: extension record ${entry.recordNumber} of $MFT is not in the part of $MFT mapped by record 0`,
          );
        }
        const extension = parseRecordBytes(
          await reader.read(offset, recordSize),
          entry.recordNumber,
          offset,
          reader.description,
          boot.clusterCount,
        );
        if (!extension.inUse || extension.baseRecord !== 0)
          throw new FormatError(`${label}: MFT record ${entry.recordNumber} is not an extension record of $MFT`);
        extents.push(...dataExtents(extension));
        runlist = joinExtents();
      }
    }
    const info = first;
    const recordCount = Math.floor(info.dataSize / recordSize);
    if (recordCount <= SystemFile.firstUser) throw new FormatError(`${label}: $MFT holds only ${recordCount} records`);
    if (!runlist.covers(0, Math.ceil(info.dataSize / boot.clusterSize)))
      throw new FormatError(`${label}: runlist does not map the ${info.dataSize} bytes of $MFT`);
    return new Mft(reader, boot, runlist, recordCount, info.initializedSize);
  }

  /** The clusters $MFT itself occupies. */
  get runs(): Runlist {
    return this.runlist;
  }

  /**
   * A record that is in use (magic "FILE" and the in-use flag, both in its first sector,
   * which fixups never touch), or null for a free, never-written or foreign record.
   */
  async recordIfInUse(number: number): Promise<MftRecord | null> {
    const { bytes } = await this.recordBytes(number);
    if (bytes.toString('latin1', 0, 4) !== 'FILE' || (bytes.readUInt16LE(22) & RECORD_IN_USE) === 0) return null;
    return this.record(number);
  }

  /** A record with fixups applied; not interpreted beyond its header and attributes. */
  async record(number: number): Promise<MftRecord> {
    const { bytes, position } = await this.recordBytes(number);
    return parseRecordBytes(
      Buffer.from(bytes),
      number,
      this.runlist.volumeOffsetOf(position),
      this.reader.description,
      this.boot.clusterCount,
    );
  }

  private async recordBytes(number: number): Promise<{ bytes: Buffer; position: number }> {
    if (!Number.isSafeInteger(number) || number < 0 || number >= this.recordCount) {
      throw new FormatError(
        `${this.reader.description}: MFT record ${number} is outside $MFT (${this.recordCount} records)`,
      );
    }
    const recordSize = this.boot.mftRecordSize;
    const position = number * recordSize;
    const blockIndex = Math.floor(position / BLOCK_BYTES);
    const block = await this.block(blockIndex);
    const start = position - blockIndex * BLOCK_BYTES;
    return { bytes: block.subarray(start, start + recordSize), position };
  }

  private block(index: number): Promise<Buffer> {
    let block = this.blocks.get(index);
    if (block) {
      // Keep recently used blocks at the end of the map's order.
      this.blocks.delete(index);
      this.blocks.set(index, block);
      return block;
    }
    const start = index * BLOCK_BYTES;
    const length = Math.min(BLOCK_BYTES, this.recordCount * this.boot.mftRecordSize - start);
    block = this.runlist.read(this.reader, start, length, this.initializedSize);
    block.catch(() => this.blocks.delete(index));
    this.blocks.set(index, block);
    while (this.blocks.size > CACHED_BLOCKS) this.blocks.delete(this.blocks.keys().next().value!);
    return block;
  }

  /** A file by record number, with attributes from its extension records. */
  inode(number: number): Promise<NtfsInode> {
    let inode = this.inodes.get(number);
    if (!inode) {
      inode = this.loadInode(number);
      inode.catch(() => this.inodes.delete(number));
      if (this.inodes.size >= CACHED_INODES) this.inodes.clear();
      this.inodes.set(number, inode);
    }
    return inode;
  }

  private async loadInode(number: number): Promise<NtfsInode> {
    const base = await this.record(number);
    const where = `${this.reader.description}: MFT record ${number}`;
    if (!base.inUse) throw new FormatError(`${where} is not in use`);
    if (base.baseRecord !== 0)
      throw new FormatError(`${where} is an extension of record ${base.baseRecord}, not a file`);
    const attributes = [...base.attributes];
    const list = base.attributes.find((attribute) => attribute.type === AttributeType.attributeList);
    if (list) {
      const listData = AttributeData.fromExtents(
        this.reader,
        [list],
        this.boot.clusterSize,
        `${where}, $ATTRIBUTE_LIST`,
      );
      const entries = parseAttributeList(
        new ByteView(await listData.readAll(MAX_ATTRIBUTE_LIST_BYTES), `${where}, $ATTRIBUTE_LIST`, null),
      );
      const extensionNumbers = new Set(
        entries.map((entry) => entry.recordNumber).filter((record) => record !== number),
      );
      for (const extensionNumber of extensionNumbers) {
        const extension = await this.record(extensionNumber);
        if (!extension.inUse || extension.baseRecord !== number) {
          throw new FormatError(
            `${where}: its attribute list names MFT record ${extensionNumber}, which is not one of its extension records`,
          );
        }
        attributes.push(...extension.attributes.filter((attribute) => attribute.type !== AttributeType.attributeList));
      }
    }
    return new NtfsInode(this, base, attributes);
  }
}

/** The non-resident extents of a record's unnamed $DATA. */
function dataExtents(record: MftRecord): NonResidentInfo[] {
  return record.attributes.flatMap((attribute) =>
    attribute.type === AttributeType.data && attribute.name === '' && attribute.nonResident
      ? [attribute.nonResident]
      : [],
  );
}

function parseRecordBytes(
  bytes: Buffer,
  number: number,
  volumeOffset: number | null,
  description: string,
  clusterCount: number,
): MftRecord {
  const view = new ByteView(bytes, `${description}: MFT record ${number}`, volumeOffset);
  applyFixups(view, 'FILE');
  return parseMftRecord(view, number, clusterCount);
}
