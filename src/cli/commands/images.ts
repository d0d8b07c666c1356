// `b365 images` and `b365 machines`: what the repository holds.
import type { Command } from 'commander';
import { clientFor, globals } from '../context.js';
import { formatBytes, printJson, printTable } from '../output.js';

export function registerImages(program: Command): void {
  const images = program
    .command('images')
    .description('list images')
    .option('--machine <name>', 'only this machine')
    .action(async (options: { machine?: string }, command: Command) => {
      const client = await clientFor(command);
      try {
        const list = await client.listImages(options.machine);
        if (globals(command).json) return printJson({ images: list });
        printTable(
          list.map((image) => ({ id: image.id, created: image.createdAt, size: formatBytes(image.sizeBytes), used: formatBytes(image.usedBytes), uploaded: formatBytes(image.uploadedBytes), state: image.state })),
          ['id', 'created', 'size', 'used', 'uploaded', 'state'],
        );
      } finally {
        await client.close();
      }
    });

  images
    .command('show')
    .description("print an image's manifest")
    .argument('<image>', 'image id or MACHINE@latest')
    .action(async (reference: string, _options: unknown, command: Command) => {
      const client = await clientFor(command);
      try {
        const { manifest } = await client.manifest(reference);
        printJson(manifest);
      } finally {
        await client.close();
      }
    });

  images
    .command('delete')
    .description('delete an image (admin); its chunks are freed by garbage collection')
    .argument('<image>', 'image id')
    .action(async (reference: string, _options: unknown, command: Command) => {
      const client = await clientFor(command);
      try {
        const deleted = await client.deleteImage(reference);
        if (globals(command).json) printJson({ deleted });
        else process.stdout.write(`deleted ${deleted.id}\n`);
      } finally {
        await client.close();
      }
    });

  program
    .command('machines')
    .description('list machines')
    .action(async (_options: unknown, command: Command) => {
      const client = await clientFor(command);
      try {
        const machines = await client.listMachines();
        if (globals(command).json) return printJson({ machines });
        printTable(
          machines.map((machine) => ({ name: machine.name, images: machine.imageCount, latest: machine.latestImage, 'last seen': machine.lastSeenAt })),
          ['name', 'images', 'latest', 'last seen'],
        );
      } finally {
        await client.close();
      }
    });
}
