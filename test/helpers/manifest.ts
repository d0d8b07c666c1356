// A complete, valid manifest to start tests from.
import type { Manifest } from '../../src/format/manifest.js';

const digest = (character: string) => character.repeat(64);

export function sampleManifest(): Manifest {
  return {
    format: 'backup365-manifest',
    version: 1,
    machine: 'pc-01',
    parent: null,
    client: {
      version: '0.1.0',
      hostname: 'pc-01',
      startedAt: '2026-11-26T02:00:00Z',
      finishedAt: '2026-11-26T02:03:00Z',
    },
    disks: [
      {
        id: 'disk0',
        source: '/dev/sda',
        sourceKind: 'block-device',
        size: 4 * 2 ** 30,
        logicalSectorSize: 512,
        physicalSectorSize: 4096,
        model: 'QEMU HARDDISK',
        serial: 'QM00001',
        partitionTable: {
          type: 'gpt',
          diskGuid: '0f2a3b4c-1111-2222-3333-444455556666',
          firstUsableLba: 34,
          lastUsableLba: 8388574,
          entryCount: 128,
          entrySize: 128,
          pmbr: 'protective',
          partitions: [
            {
              number: 1,
              kind: 'primary',
              start: 1 << 20,
              size: 4 * 2 ** 30 - (2 << 20),
              type: '0fc63daf-8483-4772-8e79-3d69d8477de4',
              guid: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
              name: 'root',
              attributes: '0x0000000000000000',
            },
          ],
        },
        volumes: [
          {
            id: 'p1',
            kind: 'partition',
            partitionNumber: 1,
            offset: 1 << 20,
            size: 4 * 2 ** 30 - (2 << 20),
            filesystem: {
              type: 'ext4',
              uuid: '1b4e28ba-2fa1-11d2-883f-0016d3cca427',
              label: 'root',
              blockSize: 4096,
              totalBytes: 4 * 2 ** 30 - (2 << 20),
              usedBytes: 2 ** 30,
            },
            method: 'used-blocks',
            chunkSize: 1 << 20,
            index: digest('a'),
            contentDigest: digest('b'),
            stats: {
              chunks: 4094,
              holes: 3000,
              bytesRead: 2 ** 30,
              bytesUsed: 2 ** 30,
              chunksUploaded: 1094,
              chunksReused: 0,
              bytesUploaded: 600 << 20,
            },
            warnings: [],
          },
        ],
      },
    ],
    stats: {
      bytesRead: 2 ** 30,
      bytesUsed: 2 ** 30,
      bytesUploaded: 600 << 20,
      chunksTotal: 4094,
      chunksHoles: 3000,
      chunksUploaded: 1094,
      chunksReused: 0,
      durationMs: 180000,
    },
    warnings: [],
  };
}

/**
 * A manifest of one unpartitioned disk captured raw as a single volume, whose index is
 * `index` (stored under `indexDigest`); the content digest is a placeholder the server does not check.
 */
export function rawDiskManifest(
  machine: string,
  index: { chunkSize: number; volumeSize: number },
  indexDigest: string,
): Manifest {
  const manifest = sampleManifest();
  manifest.machine = machine;
  const disk = manifest.disks[0]!;
  disk.size = index.volumeSize;
  disk.partitionTable = { type: 'none', partitions: [] };
  Object.assign(disk.volumes[0]!, {
    id: 'disk',
    kind: 'disk',
    partitionNumber: null,
    offset: 0,
    size: index.volumeSize,
    filesystem: null,
    method: 'raw',
    chunkSize: index.chunkSize,
    index: indexDigest,
    contentDigest: 'c'.repeat(64),
  });
  return manifest;
}
