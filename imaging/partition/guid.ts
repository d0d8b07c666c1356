// GUIDs as GPT stores them: 16 bytes whose first three fields are little-endian
// (the Microsoft layout), written in text as lowercase dashed hex.
import { FormatError } from '../../src/core/errors.js';

export const ZERO_GUID = '00000000-0000-0000-0000-000000000000';
const GUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Byte order of the text's hex pairs within the 16 stored bytes. */
const TEXT_TO_STORED = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];

export function isGuid(text: string): boolean {
  return GUID_PATTERN.test(text);
}

/** The 16 bytes at `offset` as lowercase dashed text. */
export function decodeGuid(bytes: Buffer, offset = 0): string {
  const hex = TEXT_TO_STORED.map((stored) => bytes[offset + stored]!.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Writes a GUID given as text (either case) into `bytes` at `offset`. */
export function encodeGuid(text: string, bytes: Buffer, offset = 0): void {
  const lower = text.toLowerCase();
  if (!isGuid(lower)) throw new FormatError(`not a GUID: ${JSON.stringify(text)}`);
  const hex = lower.replaceAll('-', '');
  TEXT_TO_STORED.forEach((stored, index) => {
    bytes[offset + stored] = parseInt(hex.slice(index * 2, index * 2 + 2), 16);
  });
}
