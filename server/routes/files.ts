// Files inside images over HTTP: a directory lists as JSON, a file comes back as its
// bytes (with Range), `?archive=tar` streams a tar of the path.
import { Router } from 'express';
import { FormatError } from '../../src/core/errors.js';
import { listPath } from '../../imaging/files/listing.js';
import { normalizeVolumePath } from '../../imaging/files/paths.js';
import { writeTar } from '../../imaging/files/tar.js';
import type { FileAccess } from '../files.js';
import { principalOf } from '../http.js';
import { readStats } from '../stats.js';
import { requireRole } from '../auth.js';
import { accepts } from '../api-schemas/validate.js';

const BLOCK = 4 << 20;

function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'invalid' {
  if (!header) return null;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return 'invalid';
  let start: number;
  let end: number;
  if (match[1] === '') {
    start = Math.max(0, size - Number(match[2]));
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start > end || start >= size) return 'invalid';
  return { start, end };
}

export function fileRoutes(files: FileAccess): Router {
  const router = Router();

  router.get('/stats', accepts('readStats'), (_request, response) => {
    requireRole(principalOf(response), 'admin', 'auditor');
    response.json(readStats);
  });

  router.get('/images/:id/volumes/:volume/files{/*path}', accepts('readPath'), async (request, response) => {
    const parts = (request.params as { path?: string[] }).path ?? [];
    const volumePath = normalizeVolumePath(parts.join('/'));
    const opened = await files.open(principalOf(response), String(request.params.id), String(request.params.volume));
    if (request.query.archive !== undefined) {
      if (request.query.archive !== 'tar') throw new FormatError('archive must be tar');
      response.setHeader('Content-Type', 'application/x-tar');
      response.setHeader(
        'Content-Disposition',
        `attachment; filename="${(volumePath.split('/').pop() || opened.volume.id).replace(/"/g, '')}.tar"`,
      );
      await writeTar(opened.tree, [volumePath], response);
      return;
    }
    const node = await opened.tree.lookup(volumePath);
    if (node.stat.type === 'directory') {
      response.json({ image: opened.image, volume: opened.volume.id, ...(await listPath(opened.tree, volumePath)) });
      return;
    }
    if (node.stat.type === 'symlink') {
      response.json({ image: opened.image, volume: opened.volume.id, ...(await listPath(opened.tree, volumePath)) });
      return;
    }
    const size = node.stat.size;
    const range = parseRange(request.headers.range, size);
    if (range === 'invalid') {
      response.status(416).setHeader('Content-Range', `bytes */${size}`).end();
      return;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? size - 1;
    response.status(range ? 206 : 200);
    response.setHeader('Accept-Ranges', 'bytes');
    response.setHeader('Content-Type', 'application/octet-stream');
    response.setHeader('Content-Length', String(Math.max(0, end - start + 1)));
    response.setHeader('Last-Modified', new Date(node.stat.mtimeMs).toUTCString());
    if (range) response.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    for (let offset = start; offset <= end; offset += BLOCK) {
      const bytes = await opened.tree.read(node, offset, Math.min(BLOCK, end + 1 - offset));
      if (!response.write(bytes)) await new Promise<void>((resolve) => response.once('drain', () => resolve()));
      if (response.destroyed) return;
    }
    response.end();
  });

  return router;
}
