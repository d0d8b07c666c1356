// `b365 nbd IMAGE --volume N`: serve a volume of an image read-only over NBD, so
// qemu-img, qemu-nbd or nbd-client can read or mount it without a restore.
import type { Command } from 'commander';
import { createNbdServer } from '../../../imaging/nbd/server.js';
import { ImageVolumeReader } from '../../../imaging/image-volume.js';
import { NotFoundError } from '../../core/errors.js';
import { pickVolume } from '../../../imaging/files/volume-files.js';
import { parseListen } from '../../core/listen.js';
import { clientFor, globals } from '../context.js';

export function registerNbd(program: Command): void {
  program
    .command('nbd')
    .description('serve a volume of an image read-only over the NBD protocol')
    .argument('<image>', 'image id or MACHINE@latest')
    .option('--volume <n>', 'partition number (as in /dev/sdaN) or volume id; default: the largest filesystem')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:10809')
    .action(async (reference: string, options: { volume?: string; listen: string }, command: Command) => {
      const client = await clientFor(command, 'transfer');
      const { image, manifest } = await client.manifest(reference);
      const volumes = manifest.disks.flatMap((disk) => disk.volumes.map((volume) => ({ disk, volume })));
      const chosen =
        options.volume === undefined
          ? pickVolume(manifest)
          : volumes.find(
              ({ disk, volume }) =>
                String(volume.partitionNumber) === options.volume ||
                volume.id === options.volume ||
                `${disk.id}/${volume.id}` === options.volume,
            );
      if (!chosen) throw new NotFoundError(`image ${image.id} has no volume ${options.volume}`);
      const reader = new ImageVolumeReader(
        { chunk: (digest, maxSize) => client.chunk(digest, maxSize) },
        chosen.volume,
        await client.index(chosen.volume.index),
        `${image.id} ${chosen.volume.id}`,
      );
      const { host, port } = parseListen(options.listen);
      const server = createNbdServer([{ name: chosen.volume.id, reader }], {
        onError: (error) => process.stderr.write(`b365 nbd: ${error.message}\n`),
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
      const address = server.address() as { address: string; port: number };
      const url = `nbd://${address.address}:${address.port}/${chosen.volume.id}`;
      if (globals(command).json)
        process.stdout.write(
          `${JSON.stringify({ image: image.id, volume: chosen.volume.id, size: chosen.volume.size, url })}\n`,
        );
      else
        process.stdout.write(
          `serving ${image.id} ${chosen.volume.id} (${chosen.volume.size} bytes, read-only) on ${url}\n`,
        );
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      server.close();
      await client.close();
    });
}
