// `b365 images` and `b365 machines`: what the repository holds.
import type { Command } from 'commander';
import { type ImageInfo, RepositoryClient } from '../../client/repository.js';
import { AuthError } from '../../core/errors.js';
import type { VerificationJob } from '../../format/verification.js';
import { imageSummary, lastVerificationOf, type LastVerification } from '../image-summary.js';
import { clientFor, globals, REPO_OPTION_HELP, repositoryFor } from '../context.js';
import { printJson, printTable } from '../output.js';
import { formatBytes } from '../../core/units.js';
import { formatWhen, serverTimeFormat } from '../time-format.js';

/**
 * Machine tokens and restore codes may not read verification history: then it is unknown,
 * as it is for a repository directory (verification runs on a server).
 */
async function lastVerification(client: unknown, image: ImageInfo): Promise<LastVerification> {
  if (!(client instanceof RepositoryClient)) return undefined;
  try {
    const { verifications } = await client.http.call<{ verifications: VerificationJob[] }>('GET', '/verifications');
    return lastVerificationOf(image, verifications);
  } catch (error) {
    if (error instanceof AuthError) return undefined;
    throw error;
  }
}

export function registerImages(program: Command): void {
  const images = program
    .command('images')
    .description('list images')
    .option('--machine <name>', 'only this machine')
    .option('--repo <dir>', REPO_OPTION_HELP)
    .action(async (options: { machine?: string }, command: Command) => {
      const client = await repositoryFor(command, 'interactive', 'existing');
      try {
        const list = await client.listImages(options.machine);
        if (globals(command).json) return printJson({ images: list });
        const times = await serverTimeFormat(client);
        printTable(
          list.map((image) => ({
            id: image.id,
            created: formatWhen(image.createdAt, times),
            size: formatBytes(image.sizeBytes),
            used: formatBytes(image.usedBytes),
            uploaded: formatBytes(image.uploadedBytes),
            state: image.state,
          })),
          ['id', 'created', 'size', 'used', 'uploaded', 'state'],
        );
      } finally {
        await client.close();
      }
    });

  images
    .command('show')
    .description(
      'what an image holds: disks, partitions, filesystems, chunk counts, verification (--json: the manifest)',
    )
    .argument('<image>', 'image id or MACHINE@latest')
    .action(async (reference: string, _options: unknown, command: Command) => {
      const client = await repositoryFor(command, 'interactive', 'existing');
      try {
        const { image, manifest } = await client.manifest(reference);
        if (globals(command).json) return printJson(manifest);
        const last = await lastVerification(client, image);
        for (const line of imageSummary(image, manifest, last, await serverTimeFormat(client)))
          process.stdout.write(`${line}\n`);
      } finally {
        await client.close();
      }
    });

  images
    .command('delete')
    .description('delete an image (admin); its chunks are freed by garbage collection')
    .argument('<image>', 'image id')
    .action(async (reference: string, _options: unknown, command: Command) => {
      const client = await repositoryFor(command, 'interactive', 'existing');
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
        const times = await serverTimeFormat(client);
        printTable(
          machines.map((machine) => ({
            name: machine.name,
            images: machine.imageCount,
            latest: machine.latestImage,
            'last seen': formatWhen(machine.lastSeenAt, times),
          })),
          ['name', 'images', 'latest', 'last seen'],
        );
      } finally {
        await client.close();
      }
    });
}
