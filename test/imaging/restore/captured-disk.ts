// A small GPT disk made with sfdisk and mkfs.ext4 (a 8 MiB "boot" partition and a "root"
// partition with files), captured by `b365 image` into a real server: the manifest and
// repository the restore plan and stage tests read.
import fs from 'node:fs/promises';
import path from 'node:path';
import { RepositoryClient } from '../../../src/client/repository.js';
import type { Manifest } from '../../../src/format/manifest.js';
import { b365 } from '../../helpers/cli.js';
import { Prng } from '../../helpers/content.js';
import { attachLoop, MiB, mount, run, sfdisk } from '../../helpers/disk.js';
import { startServer, type TestServer } from '../../helpers/server.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export const SOURCE_SIZE = 48 * MiB;
export const BOOT = { start: MiB, size: 8 * MiB };
export const ROOT = { start: 9 * MiB, size: SOURCE_SIZE - 10 * MiB };

export interface CapturedDisk {
  server: TestServer;
  client: RepositoryClient;
  source: string;
  reference: string;
  imageId: string;
  manifest: Manifest;
}

export async function captureSmallGptDisk(t: Teardown, directory: string): Promise<CapturedDisk> {
  const source = path.join(directory, 'source.img');
  await fs.writeFile(source, Buffer.alloc(0));
  await fs.truncate(source, SOURCE_SIZE);
  await sfdisk(
    source,
    `label: gpt\nstart=${BOOT.start / 512}, size=${BOOT.size / 512}, type=linux, name="boot"\nstart=${ROOT.start / 512}, size=${ROOT.size / 512}, type=linux, name="root"\n`,
  );
  for (const [label, area] of [
    ['boot', BOOT],
    ['root', ROOT],
  ] as const) {
    const loop = await attachLoop(t, source, { offset: area.start, size: area.size });
    await run('mkfs.ext4', ['-q', '-L', label, loop.device]);
    const mounted = await mount(t, loop.device);
    const data = Buffer.alloc(3 * MiB);
    new Prng(label.length).fill(data);
    await fs.writeFile(path.join(mounted.path, 'data.bin'), data);
    await fs.writeFile(path.join(mounted.path, 'hello.txt'), `hello from ${label}\n`);
    await mounted.unmount();
    await loop.detach();
  }
  const server = await startServer(t);
  const captured = await b365(['image', source, '--machine', 'planned', '--json'], { env: server.env });
  if (captured.exitCode !== 0) throw new Error(`capture failed: ${captured.stderr}`);
  const client = new RepositoryClient({ server: server.url, token: server.adminToken });
  t.teardown(() => client.close());
  const { image, manifest } = await client.manifest('planned@latest');
  return { server, client, source, reference: 'planned@latest', imageId: image.id, manifest };
}
