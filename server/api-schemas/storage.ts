// Operations that move image data: upload sessions, stored objects, images and their
// manifests, machines, and files inside images.
import { manifestSchema } from '../../src/format/manifest.js';
import { MAX_MISSING_BATCH } from '../repository.js';
import { count, digest, imageId, listOf, machineName, object, ref, shape, uuid } from './common.js';
import type { Operation, ResponseSpec } from './operation.js';

const UPLOADERS: Operation['roles'] = ['admin', 'machine'];
const READERS: Operation['roles'] = ['admin', 'auditor', 'machine', 'restore'];
const session = { id: uuid };
const sessionObject = { id: uuid, digest };
const FULL: ResponseSpec = {
  description: 'repository_full: the storage has no room; nothing was stored, retry after space is freed',
  json: ref('Error'),
};
const IDLE: ResponseSpec = { description: 'the body made no progress for http.bodyIdleTimeout', json: ref('Error') };
const TOO_LARGE: ResponseSpec = { description: 'too large', json: ref('Error') };
const stored = shape({ digest, created: { type: 'boolean' } });
const { $id: _manifestId, ...manifest } = manifestSchema;

export const storageOperations: Operation[] = [
  {
    operationId: 'openSession',
    method: 'post',
    path: '/sessions',
    summary: 'Open an upload session with a client-chosen UUID, or resume it',
    roles: UPLOADERS,
    body: {
      json: object({ id: uuid, machine: machineName, parent: { anyOf: [imageId, { type: 'null' }] } }, [
        'id',
        'machine',
      ]),
    },
    responses: { 200: { description: 'session', json: ref('Session') } },
  },
  {
    operationId: 'renewSession',
    method: 'post',
    path: '/sessions/{id}/heartbeat',
    summary: "Renew the session's lease",
    roles: UPLOADERS,
    pathParameters: session,
    responses: { 200: { description: 'session', json: ref('Session') } },
  },
  {
    operationId: 'missingObjects',
    method: 'post',
    path: '/sessions/{id}/missing',
    summary: `Which of these digests (at most ${MAX_MISSING_BATCH}) must be uploaded`,
    roles: UPLOADERS,
    pathParameters: session,
    body: {
      json: object(
        {
          digests: {
            type: 'array',
            maxItems: MAX_MISSING_BATCH,
            items: digest,
            'x-invalid': `an array of digests, at most ${MAX_MISSING_BATCH} digests per request, got {value}`,
          },
        },
        ['digests'],
      ),
    },
    responses: {
      200: {
        description: 'the digests the repository lacks',
        json: shape({ missing: { type: 'array', items: digest } }),
      },
      409: { description: 'session not open', json: ref('Error') },
    },
  },
  {
    operationId: 'uploadChunk',
    method: 'put',
    path: '/sessions/{id}/chunks/{digest}',
    summary: 'Upload a chunk as an LZ4 frame; rejected with 400 digest_mismatch unless it hashes to its name',
    roles: UPLOADERS,
    pathParameters: sessionObject,
    body: { media: 'application/octet-stream' },
    responses: {
      201: {
        description: 'stored (for a machine token: new to this machine, whether or not another machine holds it)',
        json: stored,
      },
      200: {
        description: 'already present (touched); for a machine token only when its own images or session hold it',
        json: stored,
      },
      408: IDLE,
      413: TOO_LARGE,
      507: FULL,
    },
  },
  {
    operationId: 'uploadIndex',
    method: 'put',
    path: '/sessions/{id}/indexes/{digest}',
    summary: 'Upload a fixed index as an LZ4 frame',
    roles: UPLOADERS,
    pathParameters: sessionObject,
    body: { media: 'application/octet-stream' },
    responses: {
      201: { description: 'stored', json: stored },
      200: { description: 'already present', json: stored },
      408: IDLE,
      413: TOO_LARGE,
      507: FULL,
    },
  },
  {
    operationId: 'commitSession',
    method: 'post',
    path: '/sessions/{id}/commit',
    summary: 'Commit the manifest; the image exists from here on, named with a server timestamp',
    roles: UPLOADERS,
    pathParameters: session,
    body: { json: manifest },
    bodyParsedByHandler: true,
    responses: {
      201: { description: 'committed', json: shape({ image: ref('Image'), manifestDigest: digest }) },
      200: {
        description: 'already committed (idempotent)',
        json: shape({ image: ref('Image'), manifestDigest: digest }),
      },
      409: {
        description:
          'missing_objects: names the absent digests (absent from the catalog, or from the store though the catalog listed them); send them and commit again',
        json: ref('Error'),
      },
      507: FULL,
    },
  },
  {
    operationId: 'abortSession',
    method: 'delete',
    path: '/sessions/{id}',
    summary: 'Abort the session',
    roles: UPLOADERS,
    pathParameters: session,
    responses: { 200: { description: 'aborted', json: ref('Session') } },
  },
  {
    operationId: 'listMachines',
    method: 'get',
    path: '/machines',
    summary: 'Machines and their latest image',
    roles: READERS,
    responses: { 200: { description: 'machines', json: listOf('machines', 'Machine') } },
  },
  {
    operationId: 'baseImage',
    method: 'get',
    path: '/machines/{machine}/base',
    summary: 'Latest healthy image holding one of the given disks',
    roles: ['admin', 'machine'],
    pathParameters: { machine: machineName },
    query: object({
      disk: {
        type: 'array',
        items: { type: 'string', maxLength: 4096 },
        maxItems: 64,
        description: 'a disk key, repeatable',
      },
    }),
    responses: {
      200: {
        description: 'the base image, or null',
        json: shape({ image: { anyOf: [ref('Image'), { type: 'null' }] } }),
      },
    },
  },
  {
    operationId: 'listImages',
    method: 'get',
    path: '/images',
    summary: 'List images',
    roles: READERS,
    query: object({ machine: machineName }),
    responses: { 200: { description: 'images', json: listOf('images', 'Image') } },
  },
  {
    operationId: 'getImage',
    method: 'get',
    path: '/images/{id}',
    summary: 'One image (id is MACHINE@TIMESTAMP or MACHINE@latest)',
    roles: READERS,
    pathParameters: { id: imageId },
    responses: { 200: { description: 'image', json: ref('Image') } },
  },
  {
    operationId: 'getManifest',
    method: 'get',
    path: '/images/{id}/manifest',
    summary: 'The manifest exactly as stored',
    roles: READERS,
    pathParameters: { id: imageId },
    responses: { 200: { description: 'manifest', json: manifest } },
  },
  {
    operationId: 'deleteImage',
    method: 'delete',
    path: '/images/{id}',
    summary: 'Delete an image (its chunks stay until garbage collection)',
    roles: ['admin'],
    pathParameters: { id: imageId },
    responses: { 200: { description: 'deleted', json: shape({ deleted: ref('Image') }) } },
  },
  {
    operationId: 'getChunk',
    method: 'get',
    path: '/chunks/{digest}',
    summary: 'A chunk as its stored LZ4 frame',
    roles: ['admin', 'machine', 'restore'],
    pathParameters: { digest },
    responses: { 200: { description: 'LZ4 frame', media: ['application/octet-stream'] } },
  },
  {
    operationId: 'getIndex',
    method: 'get',
    path: '/indexes/{digest}',
    summary: 'A fixed index as its stored LZ4 frame',
    roles: READERS,
    pathParameters: { digest },
    responses: { 200: { description: 'LZ4 frame', media: ['application/octet-stream'] } },
  },
  {
    operationId: 'readPath',
    method: 'get',
    path: '/images/{id}/volumes/{volume}/files/{path}',
    summary:
      'A path inside a volume (partition number or volume id): a directory lists as JSON, a file comes back as bytes (Range supported), ?archive=tar streams a tar',
    roles: ['admin', 'machine', 'restore'],
    pathParameters: {
      id: imageId,
      volume: { type: 'string', minLength: 1, maxLength: 200 },
      path: { type: 'string', description: 'a path inside the volume; empty for its root' },
    },
    query: object({ archive: { enum: ['tar'] } }),
    responses: {
      200: {
        description: 'a listing (directories, symlinks) or the file bytes, or a tar with ?archive=tar',
        json: shape({
          image: imageId,
          volume: { type: 'string' },
          path: { type: 'string' },
          type: { type: 'string' },
          entries: { type: 'array', items: { type: 'object' } },
        }),
        media: ['application/octet-stream', 'application/x-tar'],
      },
      206: { description: 'partial content', media: ['application/octet-stream'] },
      416: { description: 'bad range' },
    },
  },
  {
    operationId: 'readStats',
    method: 'get',
    path: '/stats',
    summary: 'Counters of chunks and bytes served to readers',
    roles: ['admin', 'auditor'],
    responses: { 200: { description: 'counters', json: shape({ chunksServed: count, chunkBytesServed: count }) } },
  },
];
