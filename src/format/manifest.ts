// The manifest: one JSON document per image describing every disk, its partition
// table and every volume with its index and content digest. Parsed in one place,
// against a closed JSON schema, so a bad document fails with the JSON path at fault.
import { Ajv, type ErrorObject } from 'ajv';
import { FormatError } from '../core/errors.js';

export const MANIFEST_FORMAT = 'backup365-manifest';
export const MANIFEST_VERSION = 1;

export type CaptureMethod = 'used-blocks' | 'raw' | 'swap-header-only';
export type VolumeKind = 'partition' | 'gap' | 'disk';
export type PartitionTableType = 'gpt' | 'mbr' | 'none';

export interface FilesystemInfo {
  type: string;
  uuid: string | null;
  label: string | null;
  blockSize: number;
  totalBytes: number;
  usedBytes: number;
  features?: string[];
}

export interface VolumeStats {
  chunks: number;
  holes: number;
  bytesRead: number;
  bytesUsed: number;
  chunksUploaded: number;
  chunksReused: number;
  bytesUploaded: number;
}

export interface Volume {
  id: string;
  kind: VolumeKind;
  partitionNumber: number | null;
  offset: number;
  size: number;
  filesystem: FilesystemInfo | null;
  method: CaptureMethod;
  chunkSize: number;
  index: string;
  contentDigest: string;
  stats: VolumeStats;
  warnings: string[];
}

export interface Partition {
  number: number;
  kind: 'primary' | 'extended' | 'logical';
  start: number;
  size: number;
  type: string;
  guid?: string;
  name?: string;
  attributes?: string;
  bootable?: boolean;
  /** For MBR logical partitions: where its extended boot record sits, in bytes. */
  ebrOffset?: number;
}

export interface PartitionTable {
  type: PartitionTableType;
  /** GPT disk GUID. */
  diskGuid?: string;
  /** MBR disk signature, 8 hex digits. */
  diskId?: string;
  firstUsableLba?: number;
  lastUsableLba?: number;
  entryCount?: number;
  entrySize?: number;
  /** GPT: protective or hybrid MBR in front of it. */
  pmbr?: 'protective' | 'hybrid';
  /** GPT: first LBA of the primary partition entry array (2 on nearly every disk). */
  entriesLba?: number;
  /** GPT with a hybrid MBR: the MBR's own entries (the 0xEE one included), numbered by slot 1-4. */
  hybridMbr?: Partition[];
  partitions: Partition[];
}

export interface Disk {
  id: string;
  source: string;
  sourceKind: 'block-device' | 'file';
  size: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  model: string | null;
  serial: string | null;
  partitionTable: PartitionTable;
  volumes: Volume[];
}

export interface ImageStats {
  bytesRead: number;
  bytesUsed: number;
  bytesUploaded: number;
  chunksTotal: number;
  chunksHoles: number;
  chunksUploaded: number;
  chunksReused: number;
  durationMs: number;
}

export interface ClientInfo {
  version: string;
  hostname: string;
  startedAt: string;
  finishedAt: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  machine: string;
  /** Assigned by the server at commit: `<machine>@<timestamp>`. */
  id?: string;
  /** Assigned by the server at commit. */
  createdAt?: string;
  parent: string | null;
  client: ClientInfo;
  disks: Disk[];
  stats: ImageStats;
  warnings: string[];
}

export const MACHINE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
const DIGEST = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const COUNT = { type: 'integer', minimum: 0 } as const;
const GUID = { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' } as const;
const TIME = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,3})?Z$' } as const;
const TEXT = { type: 'string', maxLength: 4096 } as const;
const NULLABLE_TEXT = { anyOf: [TEXT, { type: 'null' }] } as const;
const WARNINGS = { type: 'array', items: TEXT, maxItems: 10000 } as const;

export const manifestSchema = {
  $id: 'https://backup365.dev/schema/manifest-v1.json',
  type: 'object',
  additionalProperties: false,
  required: ['format', 'version', 'machine', 'parent', 'client', 'disks', 'stats', 'warnings'],
  properties: {
    format: { const: MANIFEST_FORMAT },
    version: { const: MANIFEST_VERSION },
    machine: { type: 'string', pattern: MACHINE_NAME_PATTERN },
    id: { type: 'string', maxLength: 200 },
    createdAt: TIME,
    parent: { anyOf: [{ type: 'string', maxLength: 200 }, { type: 'null' }] },
    client: {
      type: 'object',
      additionalProperties: false,
      required: ['version', 'hostname', 'startedAt', 'finishedAt'],
      properties: { version: TEXT, hostname: TEXT, startedAt: TIME, finishedAt: TIME },
    },
    disks: {
      type: 'array',
      minItems: 1,
      maxItems: 64,
      items: {
        type: 'object',
        additionalProperties: false,
        required: [
          'id',
          'source',
          'sourceKind',
          'size',
          'logicalSectorSize',
          'physicalSectorSize',
          'model',
          'serial',
          'partitionTable',
          'volumes',
        ],
        properties: {
          id: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
          source: TEXT,
          sourceKind: { enum: ['block-device', 'file'] },
          size: COUNT,
          logicalSectorSize: { enum: [512, 1024, 2048, 4096] },
          physicalSectorSize: { type: 'integer', minimum: 512, maximum: 65536 },
          model: NULLABLE_TEXT,
          serial: NULLABLE_TEXT,
          partitionTable: {
            type: 'object',
            additionalProperties: false,
            required: ['type', 'partitions'],
            properties: {
              type: { enum: ['gpt', 'mbr', 'none'] },
              diskGuid: GUID,
              diskId: { type: 'string', pattern: '^[0-9a-f]{8}$' },
              firstUsableLba: COUNT,
              lastUsableLba: COUNT,
              entryCount: COUNT,
              entrySize: COUNT,
              pmbr: { enum: ['protective', 'hybrid'] },
              entriesLba: COUNT,
              hybridMbr: {
                type: 'array',
                maxItems: 4,
                items: {
                  type: 'object',
                  additionalProperties: false,
                  required: ['number', 'kind', 'start', 'size', 'type'],
                  properties: {
                    number: { type: 'integer', minimum: 1, maximum: 4 },
                    kind: { const: 'primary' },
                    start: COUNT,
                    size: COUNT,
                    type: { type: 'string', pattern: '^0x[0-9a-f]{2}$' },
                    bootable: { type: 'boolean' },
                  },
                },
              },
              partitions: {
                type: 'array',
                maxItems: 1024,
                items: {
                  type: 'object',
                  additionalProperties: false,
                  required: ['number', 'kind', 'start', 'size', 'type'],
                  properties: {
                    number: { type: 'integer', minimum: 1, maximum: 1024 },
                    kind: { enum: ['primary', 'extended', 'logical'] },
                    start: COUNT,
                    size: COUNT,
                    type: { type: 'string', maxLength: 64 },
                    guid: GUID,
                    name: { type: 'string', maxLength: 72 },
                    attributes: { type: 'string', pattern: '^0x[0-9a-f]{16}$' },
                    bootable: { type: 'boolean' },
                    ebrOffset: COUNT,
                  },
                },
              },
            },
          },
          volumes: {
            type: 'array',
            maxItems: 2048,
            items: {
              type: 'object',
              additionalProperties: false,
              required: [
                'id',
                'kind',
                'partitionNumber',
                'offset',
                'size',
                'filesystem',
                'method',
                'chunkSize',
                'index',
                'contentDigest',
                'stats',
                'warnings',
              ],
              properties: {
                id: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
                kind: { enum: ['partition', 'gap', 'disk'] },
                partitionNumber: { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'null' }] },
                offset: COUNT,
                size: { type: 'integer', minimum: 1 },
                filesystem: {
                  anyOf: [
                    { type: 'null' },
                    {
                      type: 'object',
                      additionalProperties: false,
                      required: ['type', 'uuid', 'label', 'blockSize', 'totalBytes', 'usedBytes'],
                      properties: {
                        type: { type: 'string', maxLength: 32 },
                        uuid: NULLABLE_TEXT,
                        label: NULLABLE_TEXT,
                        blockSize: { type: 'integer', minimum: 1 },
                        totalBytes: COUNT,
                        usedBytes: COUNT,
                        features: { type: 'array', items: { type: 'string', maxLength: 64 }, maxItems: 256 },
                      },
                    },
                  ],
                },
                method: { enum: ['used-blocks', 'raw', 'swap-header-only'] },
                chunkSize: { type: 'integer', minimum: 262144, maximum: 8388608 },
                index: DIGEST,
                contentDigest: DIGEST,
                stats: {
                  type: 'object',
                  additionalProperties: false,
                  required: [
                    'chunks',
                    'holes',
                    'bytesRead',
                    'bytesUsed',
                    'chunksUploaded',
                    'chunksReused',
                    'bytesUploaded',
                  ],
                  properties: {
                    chunks: COUNT,
                    holes: COUNT,
                    bytesRead: COUNT,
                    bytesUsed: COUNT,
                    chunksUploaded: COUNT,
                    chunksReused: COUNT,
                    bytesUploaded: COUNT,
                  },
                },
                warnings: WARNINGS,
              },
            },
          },
        },
      },
    },
    stats: {
      type: 'object',
      additionalProperties: false,
      required: [
        'bytesRead',
        'bytesUsed',
        'bytesUploaded',
        'chunksTotal',
        'chunksHoles',
        'chunksUploaded',
        'chunksReused',
        'durationMs',
      ],
      properties: {
        bytesRead: COUNT,
        bytesUsed: COUNT,
        bytesUploaded: COUNT,
        chunksTotal: COUNT,
        chunksHoles: COUNT,
        chunksUploaded: COUNT,
        chunksReused: COUNT,
        durationMs: COUNT,
      },
    },
    warnings: WARNINGS,
  },
} as const;

const ajv = new Ajv({ allErrors: false, strict: true });
const validateSchema = ajv.compile(manifestSchema);

function describeSchemaError(error: ErrorObject): string {
  const path = error.instancePath || '/';
  if (error.keyword === 'additionalProperties') {
    return `${path}: unknown field "${(error.params as { additionalProperty: string }).additionalProperty}"`;
  }
  if (error.keyword === 'required') {
    return `${path}: missing field "${(error.params as { missingProperty: string }).missingProperty}"`;
  }
  if (error.keyword === 'const' || error.keyword === 'enum') {
    const allowed =
      error.keyword === 'const'
        ? [(error.params as { allowedValue: unknown }).allowedValue]
        : (error.params as { allowedValues: unknown[] }).allowedValues;
    return `${path}: must be one of ${allowed.map((value) => JSON.stringify(value)).join(', ')}`;
  }
  return `${path}: ${error.message ?? error.keyword}`;
}

/** Checks that go beyond the schema: consistent geometry and unique names. */
function checkConsistency(manifest: Manifest): void {
  const diskIds = new Set<string>();
  manifest.disks.forEach((disk, diskNumber) => {
    const at = `/disks/${diskNumber}`;
    if (diskIds.has(disk.id)) throw new FormatError(`invalid manifest: ${at}/id: duplicate disk id "${disk.id}"`);
    diskIds.add(disk.id);
    const volumeIds = new Set<string>();
    disk.volumes.forEach((volume, volumeNumber) => {
      const vat = `${at}/volumes/${volumeNumber}`;
      if (volumeIds.has(volume.id))
        throw new FormatError(`invalid manifest: ${vat}/id: duplicate volume id "${volume.id}"`);
      volumeIds.add(volume.id);
      if ((volume.chunkSize & (volume.chunkSize - 1)) !== 0)
        throw new FormatError(`invalid manifest: ${vat}/chunkSize: must be a power of two`);
      if (volume.offset + volume.size > disk.size) {
        throw new FormatError(
          `invalid manifest: ${vat}: volume ends at byte ${volume.offset + volume.size}, past the end of the ${disk.size}-byte disk`,
        );
      }
    });
    disk.partitionTable.partitions.forEach((partition, partitionNumber) => {
      if (partition.start + partition.size > disk.size) {
        throw new FormatError(
          `invalid manifest: ${at}/partitionTable/partitions/${partitionNumber}: partition ends past the end of the disk`,
        );
      }
    });
  });
}

/** Validate an untrusted value as a manifest; throws FormatError naming the JSON path. */
export function parseManifest(value: unknown): Manifest {
  if (!validateSchema(value)) {
    const first = validateSchema.errors?.[0];
    throw new FormatError(`invalid manifest: ${first ? describeSchemaError(first) : 'does not match the schema'}`);
  }
  const manifest = value as unknown as Manifest;
  checkConsistency(manifest);
  return manifest;
}

export function parseManifestText(text: string, what = 'manifest'): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new FormatError(`${what} is not valid JSON: ${(error as Error).message}`);
  }
  return parseManifest(value);
}

/** Keys that say "this is the same disk" across images: serial, partition table ids, source. */
export function diskKeysOf(disk: Pick<Disk, 'serial' | 'partitionTable' | 'source'>): string[] {
  const keys: string[] = [];
  if (disk.serial) keys.push(`serial:${disk.serial}`);
  if (disk.partitionTable.diskGuid) keys.push(`gpt:${disk.partitionTable.diskGuid}`);
  if (disk.partitionTable.diskId && disk.partitionTable.diskId !== '00000000')
    keys.push(`mbr:${disk.partitionTable.diskId}`);
  keys.push(`source:${disk.source}`);
  return keys;
}

/** Every index digest the manifest names, one per volume. */
export function manifestIndexDigests(manifest: Manifest): string[] {
  return manifest.disks.flatMap((disk) => disk.volumes.map((volume) => volume.index));
}

export function* manifestVolumes(manifest: Manifest): Generator<{ disk: Disk; volume: Volume }> {
  for (const disk of manifest.disks) for (const volume of disk.volumes) yield { disk, volume };
}
