// FAT12/16/32 (EFI system partitions, USB sticks): identity as blkid reports it, the
// used-block map from the FAT, and read-only file access. The parts live in ./fat/;
// file times, stored by FAT without a zone, are read as UTC (see fat/directory.ts).
import { errorMessage, FormatError } from '../../src/core/errors.js';
import type { FilesystemInfo } from '../../src/format/manifest.js';
import type { BlockReader } from '../block-reader.js';
import { RangeList, type Range } from '../ranges.js';
import {
  checkFsInfo,
  formatSerial,
  looksLikeFatBootSector,
  parseBootSector,
  volumeLabel,
  type FatGeometry,
} from './fat/boot-sector.js';
import { findLabelEntry } from './fat/directory.js';
import { FatFileTree, readDirectoryBytes } from './fat/file-tree.js';
import { FatTable } from './fat/table.js';
import { checkFileAllocationTable } from './fat/table-check.js';
import type { CaptureMap, FileTree, FilesystemModule, OpenFilesystem } from './filesystem.js';

export const fatFilesystem: FilesystemModule = {
  name: 'fat',
  async detect(reader: BlockReader): Promise<boolean> {
    if (reader.size < 512) return false;
    return looksLikeFatBootSector(await reader.read(0, 512));
  },
  open: openFat,
};

async function openFat(reader: BlockReader): Promise<OpenFilesystem> {
  if (reader.size < 512)
    throw new FormatError(`${reader.description}: ${reader.size} bytes is too small to hold a FAT boot sector`);
  const { geometry, warnings } = parseBootSector(await reader.read(0, 512), reader.size, reader.description);
  const table = new FatTable(reader, geometry);

  if (geometry.fsInfoSector !== null) {
    const offset = geometry.fsInfoSector * geometry.bytesPerSector;
    const problem = checkFsInfo(await reader.read(offset, 512), offset);
    if (problem) warnings.push(problem);
  }
  const flags = await table.volumeFlags();
  if (flags?.dirty)
    warnings.push(
      'the volume was not cleanly unmounted (dirty flag in FAT entry 1); it is captured as it is, run fsck.fat to repair it',
    );
  if (flags?.hadErrors) warnings.push('the volume records earlier disk I/O errors (flag in FAT entry 1)');

  const usage = await table.clusterUsage();
  if (usage.badClusters)
    warnings.push(
      `${usage.badClusters} clusters are marked bad; they are not read and restore as zeros, still marked bad`,
    );
  const dataEnd = geometry.dataOffset + geometry.clusterCount * geometry.clusterSize;
  const used = RangeList.of([
    // Boot sector, FSInfo, backup boot sector and anything else in the reserved region,
    // every FAT copy, and the fixed root directory of FAT12/16: all of it before cluster 2.
    [0, geometry.dataOffset],
    ...usage.ranges,
    // The few sectors after the last whole cluster belong to no cluster; they are kept
    // (as partclone does) because it costs less than one cluster and loses nothing.
    [dataEnd, geometry.totalBytes] as Range,
  ]);

  let label: string | null = null;
  try {
    label = await rootLabel(reader, geometry, table);
  } catch (error) {
    // A damaged root directory does not make the used-block map wrong: report and go on.
    if (!(error instanceof FormatError)) throw error;
    warnings.push(`the volume label could not be read: ${errorMessage(error)}`);
  }

  const info: FilesystemInfo = {
    type: 'vfat',
    uuid: geometry.serial === null ? null : formatSerial(geometry.serial),
    label,
    blockSize: geometry.clusterSize,
    totalBytes: geometry.totalBytes,
    usedBytes: used.totalBytes,
    features: [`FAT${geometry.fatType}`],
  };
  let tree: FileTree | null = null;
  let checked: Promise<CaptureMap> | undefined;
  return {
    info,
    method: 'used-blocks',
    warnings,
    usedRanges: async () => used,
    captureMap: () => (checked ??= checkFileAllocationTable(reader, geometry, table, used)),
    files: async () => (tree ??= new FatFileTree(reader, geometry, table)),
  };
}

/**
 * The label as blkid (util-linux 2.38) reports it: only the volume-label entry of the
 * root directory counts, as for Windows; a label kept only in the boot sector is not
 * shown by either, so it is not reported here either.
 */
async function rootLabel(reader: BlockReader, geometry: FatGeometry, table: FatTable): Promise<string | null> {
  const { bytes } = await readDirectoryBytes(
    reader,
    geometry,
    table,
    geometry.fatType === 32 ? geometry.rootCluster : 0,
    '/',
  );
  const entry = findLabelEntry(bytes);
  return entry ? volumeLabel(entry) : null;
}
