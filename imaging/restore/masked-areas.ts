// Bytes compared with some areas left out: a gap holds the partition table's sectors,
// which a restore rewrites for the target, so only the rest of it must match the image.
import type { DiskWrite } from '../partition/write.js';

function overlaps(area: DiskWrite, offset: number, length: number): [number, number] | null {
  const start = Math.max(area.offset, offset);
  const end = Math.min(area.offset + area.bytes.length, offset + length);
  return start < end ? [start - offset, end - offset] : null;
}

/** Zero, in a copy, every part of [offset, offset+length) that one of `areas` covers. */
export function maskAreas(bytes: Buffer, offset: number, areas: DiskWrite[]): Buffer {
  let masked = bytes;
  for (const area of areas) {
    const hit = overlaps(area, offset, bytes.length);
    if (!hit) continue;
    if (masked === bytes) masked = Buffer.from(bytes);
    masked.fill(0, hit[0], hit[1]);
  }
  return masked;
}
