// Linux swap areas: only the header page matters (signature, UUID, label, size); the rest
// is scratch memory, captured as zeros. A swap holding a hibernation image carries another
// signature (S1SUSPEND, LINHIB0001, ...) and is not detected here, so it is imaged raw.
import { FormatError, UsageError } from '../../src/core/errors.js';
import type { FilesystemInfo } from '../../src/format/manifest.js';
import type { BlockReader } from '../block-reader.js';
import { RangeList } from '../ranges.js';
import type { FilesystemModule, OpenFilesystem } from './filesystem.js';

/** The page sizes Linux runs with; the signature sits in the last 10 bytes of the first page. */
const PAGE_SIZES = [4096, 8192, 16384, 32768, 65536];
const SIGNATURE_BYTES = 10;
/** The header fields follow 1024 bytes left for boot loaders and disk labels. */
const HEADER_OFFSET = 1024;
const UUID_OFFSET = 1036;
const LABEL_OFFSET = 1052;
const BAD_PAGES_OFFSET = 1536;
/** TuxOnIce keeps a valid-looking swap header but stores an image behind it. */
const TUXONICE_MAGIC = Buffer.from('edc302e99856e50c', 'hex');

interface SwapSignature {
  pageSize: number;
  version: 0 | 1;
}

function findSignature(firstBytes: Buffer): SwapSignature | null {
  for (const pageSize of PAGE_SIZES) {
    if (firstBytes.length < pageSize) break;
    const signature = firstBytes.toString('latin1', pageSize - SIGNATURE_BYTES, pageSize);
    if (signature === 'SWAPSPACE2') return { pageSize, version: 1 };
    if (signature === 'SWAP-SPACE') return { pageSize, version: 0 };
  }
  return null;
}

async function readFirstPages(reader: BlockReader): Promise<Buffer> {
  return reader.read(0, Math.min(reader.size, PAGE_SIZES[PAGE_SIZES.length - 1]!));
}

export const swapFilesystem: FilesystemModule = {
  name: 'swap',
  async detect(reader: BlockReader): Promise<boolean> {
    if (reader.size < PAGE_SIZES[0]!) return false;
    const firstBytes = await readFirstPages(reader);
    return findSignature(firstBytes) !== null && !firstBytes.subarray(0, TUXONICE_MAGIC.length).equals(TUXONICE_MAGIC);
  },
  open: openSwap,
};

async function openSwap(reader: BlockReader): Promise<OpenFilesystem> {
  const where = `${reader.description}: swap header`;
  const firstBytes = await readFirstPages(reader);
  const found = findSignature(firstBytes);
  if (!found)
    throw new FormatError(`${where}: no SWAPSPACE2 or SWAP-SPACE signature at the end of a 4 KiB to 64 KiB first page`);
  if (firstBytes.subarray(0, TUXONICE_MAGIC.length).equals(TUXONICE_MAGIC))
    throw new FormatError(`${where}: TuxOnIce hibernation image (magic at byte 0), not a plain swap area`);
  const { pageSize, version } = found;
  const page = firstBytes.subarray(0, pageSize);
  const warnings: string[] = [];
  let uuid: string | null = null;
  let label: string | null = null;
  let pages: number;
  const features: string[] = [];

  if (version === 0) {
    // Version 0 has no UUID or label; its first page is a bitmap of usable pages.
    pages = Math.min(Math.floor(reader.size / pageSize), (pageSize - SIGNATURE_BYTES) * 8);
    warnings.push('old version 0 swap area (SWAP-SPACE); mkswap can only re-create it as version 1');
    features.push('version 0');
  } else {
    // The header is written in the byte order of the machine that made it.
    let bigEndian = false;
    if (page.readUInt32LE(HEADER_OFFSET) !== 1) {
      if (page.readUInt32BE(HEADER_OFFSET) !== 1)
        throw new FormatError(
          `${where}: version is ${page.readUInt32LE(HEADER_OFFSET)}, not 1 (byte ${HEADER_OFFSET})`,
        );
      bigEndian = true;
      features.push('big-endian');
    }
    const u32 = (offset: number) => (bigEndian ? page.readUInt32BE(offset) : page.readUInt32LE(offset));
    const lastPage = u32(HEADER_OFFSET + 4);
    if (lastPage === 0) throw new FormatError(`${where}: last page is 0 (byte ${HEADER_OFFSET + 4})`);
    pages = lastPage + 1;
    if (pages * pageSize > reader.size) {
      throw new FormatError(
        `${where}: last page ${lastPage} ends at byte ${pages * pageSize}, beyond the ${reader.size}-byte volume (byte ${HEADER_OFFSET + 4})`,
      );
    }
    const badPages = u32(HEADER_OFFSET + 8);
    const maxBadPages = Math.floor((pageSize - BAD_PAGES_OFFSET - SIGNATURE_BYTES) / 4);
    if (badPages > maxBadPages)
      throw new FormatError(
        `${where}: ${badPages} bad pages listed, at most ${maxBadPages} fit in the header (byte ${HEADER_OFFSET + 8})`,
      );
    if (badPages > 0) warnings.push(`the swap header lists ${badPages} bad pages`);
    // blkid trusts UUID and label only when this stretch of padding is clean.
    if (page.readUInt32LE(1196) === 0 && page.readUInt32LE(1200) === 0) {
      uuid = formatUuid(page.subarray(UUID_OFFSET, UUID_OFFSET + 16));
      label = swapLabel(page.subarray(LABEL_OFFSET, LABEL_OFFSET + 16));
    } else {
      warnings.push('the swap header padding holds data, so its UUID and label are not trusted (as blkid)');
    }
    features.push('version 1');
  }

  const info: FilesystemInfo = {
    type: 'swap',
    uuid,
    label,
    blockSize: pageSize,
    totalBytes: pages * pageSize,
    usedBytes: pageSize,
    features,
  };
  const used = RangeList.of([[0, pageSize]]);
  return {
    info,
    method: 'swap-header-only',
    warnings,
    usedRanges: async () => used,
    captureMap: async () => ({ method: 'swap-header-only', ranges: used, warnings: [] }),
  };
}

function formatUuid(bytes: Buffer): string | null {
  if (bytes.every((byte) => byte === 0)) return null;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function swapLabel(bytes: Buffer): string | null {
  const end = bytes.indexOf(0);
  const text = bytes
    .subarray(0, end < 0 ? bytes.length : end)
    .toString('utf8')
    .replace(/\s+$/, '');
  return text === '' ? null : text;
}

/**
 * mkswap arguments that re-create a swap area with the same page size, UUID and label.
 * Given the target device, they end with it and the area's size in KiB, so a swap that
 * did not fill its partition keeps its size (util-linux 2.38 has no --size option).
 */
export function swapRecreateArgs(info: FilesystemInfo, device?: string): string[] {
  if (info.type !== 'swap') throw new UsageError(`cannot re-create a ${info.type} filesystem with mkswap`);
  const args = ['--pagesize', String(info.blockSize)];
  if (info.uuid) args.push('--uuid', info.uuid);
  if (info.label) args.push('--label', info.label);
  if (device !== undefined) args.push(device, String(Math.floor(info.totalBytes / 1024)));
  return args;
}
