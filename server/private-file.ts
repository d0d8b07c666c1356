// Small secrets and settings the server keeps beside its store (admin.token, the signing
// key): written whole or not at all, readable by the server's user only, and no
// temporary file left behind when the write fails (a full disk).
import fs from 'node:fs/promises';
import { asRepositoryFull } from './storage-full.js';

export async function writePrivateFile(file: string, content: string): Promise<void> {
  const temporary = `${file}.tmp`;
  try {
    const handle = await fs.open(temporary, 'w', 0o600);
    try {
      // An earlier, looser leftover keeps its mode on open: set it whatever the umask.
      await handle.chmod(0o600);
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temporary, file);
  } catch (error) {
    await fs.rm(temporary, { force: true });
    throw asRepositoryFull(error, `writing ${file}`);
  }
}
