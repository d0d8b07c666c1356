// Looking inside a local repository directory, as an auditor with shell access would.
import type { Dirent } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { decodeChunk } from '../../src/format/chunk.js';
import { MAX_INDEX_BYTES } from '../../src/format/fixed-index.js';

export async function listFiles(directory: string): Promise<string[]> {
  const found: string[] = [];
  async function walk(current: string): Promise<void> {
    let entries: Dirent[];
    try {
      entries = await fs.readdir(current, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) await walk(full);
      else found.push(full);
    }
  }
  await walk(directory);
  return found;
}

export async function storedChunks(repo: string): Promise<string[]> {
  return (await listFiles(path.join(repo, 'chunks'))).map((file) => path.basename(file));
}

/** Every object under chunks/ decompresses and hashes to its own name. */
export async function assertStoreIntact(repo: string): Promise<{ objects: number; bad: string[] }> {
  const bad: string[] = [];
  const files = await listFiles(path.join(repo, 'chunks'));
  for (const file of files) {
    try {
      decodeChunk(await fs.readFile(file), path.basename(file), MAX_INDEX_BYTES);
    } catch (error) {
      bad.push(`${file}: ${(error as Error).message}`);
    }
  }
  return { objects: files.length, bad };
}
