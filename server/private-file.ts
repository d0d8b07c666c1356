// Small secrets and settings the server keeps beside its store (admin.token, the signing
// key): written whole or not at all, readable by the server's user only, and no
// temporary file left behind when the write fails (a full disk).
import { writeFileAtomic } from '../src/core/atomic-file.js';
import { asRepositoryFull } from './storage-full.js';

export async function writePrivateFile(file: string, content: string): Promise<void> {
  try {
    await writeFileAtomic(file, content, { mode: 0o600 });
  } catch (error) {
    throw asRepositoryFull(error, `writing ${file}`);
  }
}
