// NTFS: the boot sector and $MFT, the used-cluster map from $Bitmap (plus the backup
// boot sector past the last cluster), and read-only file access. The format's parts
// live in ntfs/: boot sector, MFT records and fixups, runlists, indexes, LZNT1.
import type { BlockReader } from '../block-reader.js';
import { FormatError, NotFoundError, UserError } from '../../src/core/errors.js';
import type { FilesystemInfo } from '../../src/format/manifest.js';
import { RangeList, type Range } from '../ranges.js';
import type { CaptureMap, FileTree, FilesystemModule, OpenFilesystem } from './filesystem.js';
import { parseVolumeInformation, VolumeFlag } from './ntfs/attributes.js';
import { NTFS_OEM_ID, parseBootSector, type BootSector } from './ntfs/boot-sector.js';
import { checkClusterBitmap } from './ntfs/bitmap-check.js';
import { addUsedClusterRuns } from './ntfs/cluster-bitmap.js';
import { NtfsFileTree } from './ntfs/file-tree.js';
import { AttributeType } from './ntfs/mft-record.js';
import { Mft, SystemFile } from './ntfs/mft.js';

export const ntfsFilesystem: FilesystemModule = {
  name: 'ntfs',

  async detect(reader: BlockReader): Promise<boolean> {
    if (reader.size < 512) return false;
    const sector = await reader.read(0, 512);
    return sector.toString('latin1', 3, 11) === NTFS_OEM_ID;
  },

  async open(reader: BlockReader): Promise<OpenFilesystem> {
    if (reader.size < 512)
      throw new FormatError(`${reader.description}: ${reader.size} bytes is too small for an NTFS boot sector`);
    const boot = parseBootSector(await reader.read(0, 512), reader.description, reader.size);
    const mft = await Mft.open(reader, boot);
    return NtfsVolume.open(reader, boot, mft);
  },
};

/** $Bitmap is read in slices of this size (one slice maps 128 GiB of 4 KiB clusters). */
const BITMAP_READ_BYTES = 4 << 20;

class NtfsVolume implements OpenFilesystem {
  readonly method = 'used-blocks' as const;
  private checked: Promise<CaptureMap> | undefined;

  private constructor(
    private readonly reader: BlockReader,
    private readonly boot: BootSector,
    private readonly mft: Mft,
    readonly info: FilesystemInfo,
    readonly warnings: string[],
    /** Runs of allocated clusters, [first, end). */
    private readonly usedClusters: Array<[number, number]>,
  ) {}

  static async open(reader: BlockReader, boot: BootSector, mft: Mft): Promise<NtfsVolume> {
    const volume = await mft.inode(SystemFile.volume);
    const nameAttribute = volume.extents(AttributeType.volumeName)[0];
    if (nameAttribute && !nameAttribute.value) throw nameAttribute.location.error(8, '$VOLUME_NAME is not resident');
    const label =
      nameAttribute?.value && nameAttribute.value.length > 0
        ? nameAttribute.value.utf16(0, Math.floor(nameAttribute.value.length / 2), 'volume name')
        : null;
    const informationAttribute = volume.extents(AttributeType.volumeInformation)[0];
    if (!informationAttribute?.value)
      throw new FormatError(`${volume.label} ($Volume): no resident $VOLUME_INFORMATION`);
    const information = parseVolumeInformation(informationAttribute.value);

    const bitmapFile = await mft.inode(SystemFile.bitmap);
    const bitmapData = bitmapFile.data(AttributeType.data);
    if (!bitmapData) throw new FormatError(`${bitmapFile.label} ($Bitmap): no $DATA`);
    const neededBytes = Math.ceil(boot.clusterCount / 8);
    if (bitmapData.size < neededBytes) {
      throw new FormatError(
        `${bitmapFile.label} ($Bitmap): ${bitmapData.size} bytes cannot hold one bit for each of the ${boot.clusterCount} clusters`,
      );
    }
    const usedClusters: Array<[number, number]> = [];
    for (let offset = 0; offset < neededBytes; offset += BITMAP_READ_BYTES) {
      const slice = await bitmapData.read(offset, Math.min(BITMAP_READ_BYTES, neededBytes - offset));
      addUsedClusterRuns(usedClusters, slice, offset * 8, boot.clusterCount);
    }
    const usedCount = usedClusters.reduce((sum, [start, end]) => sum + end - start, 0);

    const warnings: string[] = [];
    if (information.flags & VolumeFlag.dirty) {
      warnings.push(
        `${reader.description}: NTFS volume is marked dirty (not cleanly unmounted, or chkdsk is scheduled); the image is of the volume as it is`,
      );
    }
    const hibernation = await hibernationWarning(new NtfsFileTree(mft), reader.description);
    if (hibernation) warnings.push(hibernation);
    const info: FilesystemInfo = {
      type: 'ntfs',
      uuid: boot.serial,
      label,
      blockSize: boot.clusterSize,
      totalBytes: boot.clusterCount * boot.clusterSize,
      usedBytes: usedCount * boot.clusterSize,
      features: [`ntfs-${information.majorVersion}.${information.minorVersion}`],
    };
    return new NtfsVolume(reader, boot, mft, info, warnings, usedClusters);
  }

  async usedRanges(): Promise<RangeList> {
    const { clusterSize, sectorCount, bytesPerSector } = this.boot;
    const ranges: Range[] = this.usedClusters.map(([start, end]) => [start * clusterSize, end * clusterSize]);
    // The backup boot sector is the last sector of the volume, after the last whole cluster.
    const backupBootSector = sectorCount * bytesPerSector;
    if (backupBootSector + bytesPerSector <= this.reader.size)
      ranges.push([backupBootSector, backupBootSector + bytesPerSector]);
    return RangeList.of(ranges);
  }

  captureMap(): Promise<CaptureMap> {
    this.checked ??= this.usedRanges().then((used) =>
      checkClusterBitmap(this.mft, this.boot, used, this.reader.size, this.reader.description),
    );
    return this.checked;
  }

  async files(): Promise<FileTree> {
    return new NtfsFileTree(this.mft);
  }
}

/**
 * Windows that is hibernated, or shut down with Fast Startup, keeps the volume's latest
 * state in memory saved to hiberfil.sys, whose header then starts "hibr" (ntfs-3g refuses
 * to mount such a volume). The image is still taken, with this warning.
 */
async function hibernationWarning(tree: NtfsFileTree, description: string): Promise<string | null> {
  try {
    const hiberfile = await tree.lookup('/hiberfil.sys');
    if (hiberfile.stat.type !== 'file') return null;
    const magic = (await tree.read(hiberfile, 0, 4)).toString('latin1');
    if (magic !== 'hibr' && magic !== 'HIBR') return null;
    return `${description}: Windows is hibernated or was shut down with Fast Startup: recent changes may be missing from this volume's image; shut Windows down fully (or disable Fast Startup) before imaging`;
  } catch (error) {
    if (error instanceof NotFoundError) return null;
    if (error instanceof UserError)
      return `${description}: could not check hiberfil.sys for hibernation: ${error.message}`;
    throw error;
  }
}
