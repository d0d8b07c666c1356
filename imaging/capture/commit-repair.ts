// What a refused commit lacks, sent again: indexes from memory, chunks read again from
// the disk at the positions their indexes give. A chunk that no longer hashes to its
// digest means the disk changed under the capture, and the image cannot be committed.
import fs from 'node:fs/promises';
import type { RepositorySink } from '../../src/client/ports.js';
import { FormatError } from '../../src/core/errors.js';
import { digestOf } from '../../src/format/digest.js';
import type { FixedIndex } from '../../src/format/fixed-index.js';
import { encodeFrame } from '../../src/format/lz4-frame.js';
import type { Volume } from '../../src/format/manifest.js';
import type { DiskPlan, VolumePlan } from './plan.js';
import { readChunkInto } from './volume.js';

/** A volume as captured, with the plans it was read by. */
export interface CapturedDiskVolume {
  disk: DiskPlan;
  plan: VolumePlan;
  volume: Volume;
  index: FixedIndex;
}

/** Send the objects of `captured` that `missing` names, deleting them from it; returns how many. */
export async function resendMissing(
  sink: RepositorySink,
  sessionId: string,
  captured: CapturedDiskVolume[],
  missing: Set<string>,
): Promise<number> {
  let sent = 0;
  for (const { index, volume } of captured) {
    if (!missing.has(volume.index)) continue;
    await sink.putIndex(sessionId, volume.index, encodeFrame(index.encode()));
    missing.delete(volume.index);
    sent++;
  }
  for (const entry of captured) {
    if (missing.size === 0) break;
    sent += await resendChunks(sink, sessionId, entry, missing);
  }
  return sent;
}

async function resendChunks(
  sink: RepositorySink,
  sessionId: string,
  { disk, plan, index }: CapturedDiskVolume,
  missing: Set<string>,
): Promise<number> {
  let sent = 0;
  const handle = await fs.open(disk.source, 'r');
  try {
    for (let position = 0; position < index.chunkCount && missing.size; position++) {
      const digest = index.get(position);
      if (!digest || !missing.has(digest)) continue;
      const chunkStart = position * plan.chunkSize;
      const bytes = Buffer.alloc(index.chunkLength(position));
      const spans = plan.readable.cursor().within(chunkStart, chunkStart + bytes.length);
      await readChunkInto(handle, plan, spans, chunkStart, bytes, `${disk.source} volume ${plan.id}`);
      const actual = digestOf(bytes);
      if (actual !== digest)
        throw new FormatError(
          `${disk.source} changed while it was being imaged: chunk at byte ${plan.offset + chunkStart} now hashes to ${actual}; image again`,
        );
      await sink.putChunk(sessionId, digest, encodeFrame(bytes));
      missing.delete(digest);
      sent++;
    }
  } finally {
    await handle.close();
  }
  return sent;
}
