// The two checksums ext2/3/4 metadata carries: CRC32C (metadata_csum, in its raw form,
// without the final inversion, as the kernel's ext4_chksum) and the CRC16 of uninit_bg
// group descriptors.

const CRC32C_POLY = 0x82f63b78;
const CRC16_POLY = 0xa001;

function tables32(): Uint32Array[] {
  const base = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CRC32C_POLY : c >>> 1;
    base[n] = c >>> 0;
  }
  // Slicing by 4: four table lookups per 32-bit word instead of one per byte.
  const slices = [base];
  for (let t = 1; t < 4; t++) {
    const previous = slices[t - 1]!;
    const table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) table[n] = (previous[n]! >>> 8) ^ base[previous[n]! & 0xff]!;
    slices.push(table);
  }
  return slices;
}

const [T0, T1, T2, T3] = tables32() as [Uint32Array, Uint32Array, Uint32Array, Uint32Array];

/** CRC32C of `data` continuing from `seed`, with no pre- or post-inversion. */
export function crc32cRaw(seed: number, data: Uint8Array, start = 0, end = data.length): number {
  let crc = seed >>> 0;
  let position = start;
  for (; position + 4 <= end; position += 4) {
    crc ^= data[position]! | (data[position + 1]! << 8) | (data[position + 2]! << 16) | (data[position + 3]! << 24);
    crc = T3[crc & 0xff]! ^ T2[(crc >>> 8) & 0xff]! ^ T1[(crc >>> 16) & 0xff]! ^ T0[crc >>> 24]!;
  }
  for (; position < end; position++) crc = (crc >>> 8) ^ T0[(crc ^ data[position]!) & 0xff]!;
  return crc >>> 0;
}

/** CRC32C of a little-endian 32-bit number, as the kernel feeds inode and group numbers. */
export function crc32cU32(seed: number, value: number): number {
  const crc = (seed ^ value) >>> 0;
  return (T3[crc & 0xff]! ^ T2[(crc >>> 8) & 0xff]! ^ T1[(crc >>> 16) & 0xff]! ^ T0[crc >>> 24]!) >>> 0;
}

const ZEROS = new Uint8Array(4);

/** CRC32C continued over `count` (at most 4) zero bytes: a checksum field taken as zero. */
export function crc32cZeros(seed: number, count: number): number {
  return crc32cRaw(seed, ZEROS, 0, count);
}

/** CRC32C of a little-endian 64-bit number (external xattr block numbers). */
export function crc32cU64(seed: number, value: number): number {
  const bytes = Buffer.alloc(8);
  bytes.writeUInt32LE(value % 0x1_0000_0000, 0);
  bytes.writeUInt32LE(Math.floor(value / 0x1_0000_0000), 4);
  return crc32cRaw(seed, bytes);
}

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CRC16_POLY : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** CRC16 (poly 0x8005, reflected) continuing from `seed`, as e2fsprogs' ext2fs_crc16. */
export function crc16(seed: number, data: Uint8Array, start = 0, end = data.length): number {
  let crc = seed & 0xffff;
  for (let position = start; position < end; position++)
    crc = ((crc >>> 8) ^ CRC16_TABLE[(crc ^ data[position]!) & 0xff]!) & 0xffff;
  return crc;
}
