// $Bitmap checked against what the MFT says: the boot sector and the system files NTFS
// cannot mount without must be marked allocated, or the bitmap is damaged and the volume
// is captured raw; clusters in the runlists of in-use MFT records that $Bitmap marks
// free are captured anyway.
import { FormatError } from '../../../src/core/errors.js';
import type { RangeList } from '../../ranges.js';
import { type CaptureMap, crossCheckMap, type MetadataRegion, type ReferencedBlocks } from '../used-map-check.js';
import type { BootSector } from './boot-sector.js';
import { AttributeType } from './mft-record.js';
import { SystemFile, type Mft } from './mft.js';
import type { Run } from './runlist.js';

/** System files whose clusters must be allocated, with the names warnings use. */
const SYSTEM_FILES: { record: number; name: string }[] = [
  { record: SystemFile.mftMirror, name: '$MFTMirr' },
  { record: SystemFile.logFile, name: '$LogFile' },
  { record: SystemFile.bitmap, name: '$Bitmap' },
];

function runRegions(runs: readonly Run[], clusterSize: number, name: string): MetadataRegion[] {
  return runs.flatMap((run) =>
    run.lcn === null ? [] : [{ name, start: run.lcn * clusterSize, end: (run.lcn + run.length) * clusterSize }],
  );
}

async function metadataRegions(mft: Mft, boot: BootSector): Promise<MetadataRegion[]> {
  const { clusterSize } = boot;
  const regions: MetadataRegion[] = [
    { name: 'boot sector', start: 0, end: boot.bytesPerSector },
    ...runRegions(mft.runs.runs, clusterSize, '$MFT'),
  ];
  for (const { record, name } of SYSTEM_FILES) {
    const data = (await mft.inode(record)).data(AttributeType.data);
    if (data?.runlist) regions.push(...runRegions(data.runlist.runs, clusterSize, name));
  }
  return regions;
}

/** Every cluster in the runlists of in-use MFT records, by the record that owns it. */
async function referenceRunlists(mft: Mft, clusterSize: number, referenced: ReferencedBlocks): Promise<void> {
  for (let number = 0; number < mft.recordCount; number++) {
    try {
      const record = await mft.recordIfInUse(number);
      if (!record) continue;
      // Extension records hold attributes of their base file: the base names the owner.
      const owner = record.baseRecord || number;
      for (const attribute of record.attributes) {
        for (const run of attribute.nonResident?.runs ?? []) {
          if (run.lcn !== null)
            referenced.reference(owner, run.lcn * clusterSize, (run.lcn + run.length) * clusterSize);
        }
      }
    } catch (error) {
      if (!(error instanceof FormatError)) throw error;
      referenced.skip(error.message);
    }
  }
}

export async function checkClusterBitmap(
  mft: Mft,
  boot: BootSector,
  used: RangeList,
  volumeSize: number,
  description: string,
): Promise<CaptureMap> {
  const wording = {
    volume: `ntfs on ${description}`,
    map: '$Bitmap',
    unit: 'cluster',
    unitSize: boot.clusterSize,
    owner: 'MFT record',
  };
  return crossCheckMap(used, volumeSize, wording, await metadataRegions(mft, boot), (referenced) =>
    referenceRunlists(mft, boot.clusterSize, referenced),
  );
}
