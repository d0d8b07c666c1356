// The NTFS boot sector ($Boot, sector 0): geometry, where $MFT and $MFTMirr start,
// the sizes of MFT records and index blocks, and the volume serial number.
import { ByteView } from './byte-view.js';

export const NTFS_OEM_ID = 'NTFS    ';

export interface BootSector {
  bytesPerSector: number;
  clusterSize: number;
  /** Sectors in the volume, not counting the backup boot sector after the last cluster. */
  sectorCount: number;
  clusterCount: number;
  mftCluster: number;
  mftMirrorCluster: number;
  mftRecordSize: number;
  indexBlockSize: number;
  /** The 64-bit serial as blkid prints it: 16 uppercase hex digits. */
  serial: string;
}

/** Sizes in the boot sector: positive = clusters, negative = 2^-n bytes, 0 = invalid. */
function clustersOrPowerOfTwo(value: number, clusterSize: number): number {
  if (value === 0) return 0;
  return value > 0 ? value * clusterSize : 2 ** -value;
}

function isPowerOfTwo(value: number): boolean {
  return Number.isSafeInteger(value) && value > 0 && (value & (value - 1)) === 0;
}

/**
 * Parse the first 512 bytes of a volume. `volumeSize` is what the device holds: a
 * boot sector claiming more is refused rather than read past the end.
 */
export function parseBootSector(sector: Buffer, description: string, volumeSize: number): BootSector {
  const view = new ByteView(sector, `${description}: NTFS boot sector`, 0);
  if (view.slice(3, 8).toString('latin1') !== NTFS_OEM_ID) throw view.error(3, 'OEM id is not "NTFS    "');
  if (view.u16(510) !== 0xaa55)
    throw view.error(510, `end-of-sector marker is 0x${view.u16(510).toString(16)}, expected 0xaa55`);

  const bytesPerSector = view.u16(11);
  if (!isPowerOfTwo(bytesPerSector) || bytesPerSector < 256 || bytesPerSector > 4096) {
    throw view.error(11, `bytes per sector is ${bytesPerSector}, expected a power of two from 256 to 4096`);
  }
  // Clusters above 64 KiB (128 sectors) are written as a negative power of two.
  const rawSectorsPerCluster = view.u8(13);
  const sectorsPerCluster = rawSectorsPerCluster > 0x80 ? 2 ** (256 - rawSectorsPerCluster) : rawSectorsPerCluster;
  if (!isPowerOfTwo(sectorsPerCluster))
    throw view.error(13, `sectors per cluster is ${rawSectorsPerCluster}, not a power of two`);
  const clusterSize = bytesPerSector * sectorsPerCluster;
  if (clusterSize > 2 << 20) throw view.error(13, `cluster size ${clusterSize} is above the 2 MiB NTFS allows`);

  const sectorCount = view.i64(40, 'number of sectors');
  if (sectorCount <= 0) throw view.error(40, `number of sectors is ${sectorCount}`);
  const volumeBytes = sectorCount * bytesPerSector;
  if (!Number.isSafeInteger(volumeBytes) || volumeBytes > volumeSize) {
    throw view.error(
      40,
      `the volume is ${sectorCount} sectors of ${bytesPerSector} bytes, more than the ${volumeSize} bytes of the device`,
    );
  }
  const clusterCount = Math.floor(volumeBytes / clusterSize);
  if (clusterCount < 1)
    throw view.error(40, `the volume of ${volumeBytes} bytes holds no whole cluster of ${clusterSize} bytes`);

  const mftCluster = view.i64(48, '$MFT cluster');
  if (mftCluster <= 0 || mftCluster >= clusterCount)
    throw view.error(48, `$MFT cluster ${mftCluster} is outside the volume's ${clusterCount} clusters`);
  const mftMirrorCluster = view.i64(56, '$MFTMirr cluster');
  if (mftMirrorCluster <= 0 || mftMirrorCluster >= clusterCount)
    throw view.error(56, `$MFTMirr cluster ${mftMirrorCluster} is outside the volume's ${clusterCount} clusters`);

  const mftRecordSize = clustersOrPowerOfTwo(view.i8(64), clusterSize);
  if (!isPowerOfTwo(mftRecordSize) || mftRecordSize < 512 || mftRecordSize > 65536) {
    throw view.error(
      64,
      `MFT record size ${mftRecordSize} (clusters per MFT record ${view.i8(64)}) is not a power of two from 512 to 65536`,
    );
  }
  const indexBlockSize = clustersOrPowerOfTwo(view.i8(68), clusterSize);
  if (!isPowerOfTwo(indexBlockSize) || indexBlockSize < 512 || indexBlockSize > 65536) {
    throw view.error(
      68,
      `index block size ${indexBlockSize} (clusters per index block ${view.i8(68)}) is not a power of two from 512 to 65536`,
    );
  }
  const serial = view.u64big(72, 'serial number').toString(16).toUpperCase().padStart(16, '0');
  return {
    bytesPerSector,
    clusterSize,
    sectorCount,
    clusterCount,
    mftCluster,
    mftMirrorCluster,
    mftRecordSize,
    indexBlockSize,
    serial,
  };
}
