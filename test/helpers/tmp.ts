// Temporary directories for a test, removed when it ends.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function tempDir(t: Teardown, prefix = 'b365-test-'): Promise<string> {
  const base = process.env.B365_TEST_TMP ?? os.tmpdir();
  const directory = await fs.mkdtemp(path.join(base, prefix));
  t.teardown(() => fs.rm(directory, { recursive: true, force: true }));
  return directory;
}
