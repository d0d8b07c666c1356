// One MFT record ("FILE") or index block ("INDX"): the update-sequence fixups that
// protect multi-sector structures, the record header, and the attribute headers
// with their resident values or decoded runlists.
import type { ByteView } from './byte-view.js';
import { decodeRunlist, type Run } from './runlist.js';

/** Multi-sector structures are protected in 512-byte strides whatever the sector size. */
const FIXUP_STRIDE = 512;

export const AttributeType = {
  standardInformation: 0x10,
  attributeList: 0x20,
  fileName: 0x30,
  objectId: 0x40,
  securityDescriptor: 0x50,
  volumeName: 0x60,
  volumeInformation: 0x70,
  data: 0x80,
  indexRoot: 0x90,
  indexAllocation: 0xa0,
  bitmap: 0xb0,
  reparsePoint: 0xc0,
  eaInformation: 0xd0,
  ea: 0xe0,
  loggedUtilityStream: 0x100,
  end: 0xffffffff,
} as const;

export const AttributeFlag = {
  compressed: 0x0001,
  encrypted: 0x4000,
  sparse: 0x8000,
} as const;

export const RECORD_IN_USE = 0x0001;
const RECORD_IS_DIRECTORY = 0x0002;

/**
 * Check the magic and undo the update-sequence fixups in place: the last two bytes of
 * every 512-byte stride hold the update sequence number, and the real bytes are kept
 * in the update sequence array. A mismatch means a torn or corrupt write.
 */
export function applyFixups(view: ByteView, magic: 'FILE' | 'INDX'): void {
  const found = view.slice(0, 4, 'magic').toString('latin1');
  if (found !== magic) {
    const shown = /^[\x20-\x7e]{4}$/.test(found) ? `"${found}"` : `0x${view.slice(0, 4).toString('hex')}`;
    throw view.error(
      0,
      found === 'BAAD'
        ? 'marked bad ("BAAD") by a multi-sector transfer error'
        : `magic is ${shown}, expected "${magic}"`,
    );
  }
  const arrayOffset = view.u16(4, 'update sequence offset');
  const arrayCount = view.u16(6, 'update sequence count');
  const strides = view.length / FIXUP_STRIDE;
  if (arrayCount !== strides + 1)
    throw view.error(
      6,
      `update sequence count is ${arrayCount}, expected ${strides + 1} for a ${view.length}-byte structure`,
    );
  if (arrayOffset < 8 || arrayOffset % 2 !== 0 || arrayOffset + arrayCount * 2 > FIXUP_STRIDE - 2) {
    throw view.error(4, `update sequence array offset ${arrayOffset} is invalid`);
  }
  const sequenceNumber = view.u16(arrayOffset);
  for (let stride = 0; stride < strides; stride++) {
    const tail = (stride + 1) * FIXUP_STRIDE - 2;
    const found = view.u16(tail);
    if (found !== sequenceNumber) {
      throw view.error(
        tail,
        `update sequence mismatch at the end of sector ${stride} (0x${found.toString(16)}, expected 0x${sequenceNumber.toString(16)}): torn or corrupt write`,
      );
    }
    view.bytes.writeUInt16LE(view.u16(arrayOffset + 2 * (stride + 1)), tail);
  }
}

export interface NonResidentInfo {
  lowestVcn: number;
  highestVcn: number;
  runs: Run[];
  /** log2 of the clusters in a compression unit; 0 when not compressed. */
  compressionUnit: number;
  /** Sizes are meaningful only in the extent with lowestVcn 0. */
  allocatedSize: number;
  dataSize: number;
  initializedSize: number;
}

export interface Attribute {
  type: number;
  name: string;
  flags: number;
  instance: number;
  /** The MFT record that holds this attribute (base or extension). */
  recordNumber: number;
  /** The value of a resident attribute, a view into its record. */
  value: ByteView | null;
  nonResident: NonResidentInfo | null;
  /** Where the attribute header is, for messages. */
  location: ByteView;
}

export interface MftRecord {
  number: number;
  sequenceNumber: number;
  linkCount: number;
  inUse: boolean;
  isDirectory: boolean;
  /** Record number of the base record, 0 when this is a base record. */
  baseRecord: number;
  attributes: Attribute[];
  view: ByteView;
}

/** Parse a record whose fixups were already applied. */
export function parseMftRecord(view: ByteView, number: number, clusterCount: number): MftRecord {
  const sequenceNumber = view.u16(16);
  const linkCount = view.u16(18);
  const attributesOffset = view.u16(20, 'attributes offset');
  const flags = view.u16(22);
  const bytesInUse = view.u32(24, 'bytes in use');
  const baseRecord = Number(view.u64big(32, 'base record reference') & 0xffffffffffffn);
  const inUse = (flags & RECORD_IN_USE) !== 0;
  if (bytesInUse > view.length || bytesInUse < attributesOffset)
    throw view.error(24, `bytes in use ${bytesInUse} is outside the ${view.length}-byte record`);
  if (attributesOffset < 24 || attributesOffset % 8 !== 0)
    throw view.error(20, `attributes offset ${attributesOffset} is invalid`);

  const attributes: Attribute[] = [];
  if (inUse) {
    let offset = attributesOffset;
    while (true) {
      if (offset + 4 > bytesInUse) throw view.error(offset, 'attribute list of the record is not terminated');
      const type = view.u32(offset, 'attribute type');
      if (type === AttributeType.end) break;
      const length = view.u32(offset + 4, 'attribute length');
      if (length < 24 || length % 8 !== 0 || offset + length > bytesInUse) {
        throw view.error(offset + 4, `attribute 0x${type.toString(16)} has invalid length ${length}`);
      }
      attributes.push(parseAttribute(view.view(offset, length, 'attribute'), type, number, clusterCount));
      offset += length;
    }
  }
  return {
    number,
    sequenceNumber,
    linkCount,
    inUse,
    isDirectory: (flags & RECORD_IS_DIRECTORY) !== 0,
    baseRecord,
    attributes,
    view,
  };
}

function parseAttribute(view: ByteView, type: number, recordNumber: number, clusterCount: number): Attribute {
  const nonResidentFlag = view.u8(8);
  const nameLength = view.u8(9);
  const nameOffset = view.u16(10);
  const flags = view.u16(12);
  const instance = view.u16(14);
  const name = nameLength > 0 ? view.utf16(nameOffset, nameLength, 'attribute name') : '';
  const common = { type, name, flags, instance, recordNumber, location: view };
  if (nonResidentFlag === 0) {
    const valueLength = view.u32(16, 'value length');
    const valueOffset = view.u16(20, 'value offset');
    return {
      ...common,
      value: view.view(valueOffset, valueLength, `value of attribute 0x${type.toString(16)}`),
      nonResident: null,
    };
  }
  if (nonResidentFlag !== 1) throw view.error(8, `non-resident flag is ${nonResidentFlag}`);
  if (view.length < 64)
    throw view.error(4, `non-resident attribute 0x${type.toString(16)} is only ${view.length} bytes`);
  const lowestVcn = view.i64(16, 'lowest VCN');
  const highestVcn = view.i64(24, 'highest VCN');
  const mappingPairsOffset = view.u16(32, 'mapping pairs offset');
  const compressionUnit = view.u8(34);
  const allocatedSize = view.i64(40, 'allocated size');
  const dataSize = view.i64(48, 'data size');
  const initializedSize = view.i64(56, 'initialized size');
  if (lowestVcn < 0 || highestVcn < lowestVcn - 1)
    throw view.error(16, `VCN range ${lowestVcn}..${highestVcn} is invalid`);
  if (mappingPairsOffset < 64 || mappingPairsOffset > view.length)
    throw view.error(32, `mapping pairs offset ${mappingPairsOffset} is outside the attribute`);
  if (lowestVcn === 0 && (allocatedSize < 0 || dataSize < 0 || initializedSize < 0 || initializedSize > dataSize)) {
    throw view.error(
      40,
      `sizes are inconsistent (allocated ${allocatedSize}, data ${dataSize}, initialized ${initializedSize})`,
    );
  }
  if (compressionUnit > 16) throw view.error(34, `compression unit ${compressionUnit} is invalid`);
  const runs = decodeRunlist(view, mappingPairsOffset, view.length, lowestVcn, clusterCount);
  return {
    ...common,
    value: null,
    nonResident: { lowestVcn, highestVcn, runs, compressionUnit, allocatedSize, dataSize, initializedSize },
  };
}
