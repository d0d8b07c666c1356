// `b365 verify`: run a verification on the server (or locally with --local) and wait
// for its signed report; `b365 verify check` checks a report offline; `b365 keys`.
import fs from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { verifyLocally } from '../../client/verify-local.js';
import { UsageError, VerificationError } from '../../errors.js';
import { checkSignedDocument, parsePublicKey } from '../../format/signed-report.js';
import { RepositoryClient } from '../../client/repository.js';
import { processSignal } from '../interrupt.js';
import { clientFor, fingerprintOf, globals, serverOf } from '../context.js';
import { byteProgress, printJson } from '../output.js';

interface VerifyOptions {
  all?: boolean;
  level: string;
  local?: boolean;
  out?: string;
}

export function registerVerify(program: Command): void {
  const verify = program.command('verify').description('verify stored images and get a signed report');

  verify
    .command('run', { isDefault: true })
    .description('verify images on the server (the default) or locally')
    .argument('[images...]', 'image ids or MACHINE@latest')
    .option('--all', 'every image in the repository')
    .option('--level <level>', 'structural, content or restore-stream', 'content')
    .option('--local', 'recompute everything on this machine, trusting nothing the server says')
    .option('--out <file>', 'also write the signed report to this file')
    .action(async (images: string[], options: VerifyOptions, command: Command) => {
      const json = globals(command).json;
      if (!options.all && images.length === 0) throw new UsageError('name images to verify, or use --all');
      const client = await clientFor(command);
      try {
        if (options.local) {
          const results = [];
          for (const image of images) {
            const progress = byteProgress(`verifying ${image} locally`, !json);
            results.push(await verifyLocally(client, image, (done, total) => progress.update(done, total)));
            progress.stop();
          }
          if (json) printJson({ results });
          else
            for (const result of results) {
              process.stdout.write(`${result.image}: ${result.result}, ${result.chunksVerified} chunks re-hashed here\n`);
              for (const volume of result.volumes) process.stdout.write(`  ${volume.ok ? 'ok  ' : 'FAIL'} ${volume.disk}/${volume.volume} ${volume.computed ?? ''}${volume.problem ? ` (${volume.problem})` : ''}\n`);
            }
          if (results.some((result) => result.result !== 'ok')) throw new VerificationError('local verification failed', { details: { results } });
          return;
        }
        let job = await client.startVerification({ images, all: options.all, level: options.level });
        if (!json) process.stderr.write(`verification ${job.id} (${job.level}) started\n`);
        while (job.state === 'queued' || job.state === 'running') {
          await sleep(300);
          job = await client.verification(job.id);
        }
        if (job.state === 'error') throw new VerificationError(`verification ${job.id} could not run: ${job.error}`);
        const bytes = await client.verificationReport(job.id);
        if (job.reportNotStored) process.stderr.write(`warning: the signed report could not be stored in the repository (${job.reportNotStored}); keep this copy with --out\n`);
        if (options.out) await fs.writeFile(options.out, bytes);
        const signed = JSON.parse(bytes.toString('utf8'));
        if (json) printJson(signed);
        else {
          const { summary } = signed.report;
          process.stdout.write(`verification ${job.id}: ${job.result} — ${summary.ok} of ${summary.images} images ok, ${summary.chunksVerified} chunks verified, ${summary.chunksMissing} missing, ${summary.chunksCorrupt} corrupt\n`);
          for (const image of signed.report.images) if (image.result !== 'ok') process.stdout.write(`  FAIL ${image.image}: ${image.problems.join('; ')}\n`);
          process.stdout.write(`report digest ${job.reportDigest}, signed by key ${signed.signature.keyId}\n`);
        }
        if (job.result !== 'ok') throw new VerificationError(`verification ${job.id} found problems`);
      } finally {
        await client.close();
      }
    });

  verify
    .command('check')
    .description('check a signed report offline with the server public key')
    .argument('<report>', 'report file (JSON)')
    .requiredOption('--pubkey <file>', 'PEM public key (from `b365 keys`)')
    .action(async (reportFile: string, options: { pubkey: string }, command: Command) => {
      const key = parsePublicKey(await fs.readFile(options.pubkey, 'utf8'));
      let document: unknown;
      try {
        document = JSON.parse(await fs.readFile(reportFile, 'utf8'));
      } catch (error) {
        throw new VerificationError(`${reportFile} is not a JSON report: ${(error as Error).message}`);
      }
      const result = checkSignedDocument(document, key);
      if (globals(command).json) printJson(result);
      else process.stdout.write(`${reportFile}: ${result.ok ? 'OK' : 'BAD'}: ${result.reason} (key ${result.keyId})\n`);
      if (!result.ok) throw new VerificationError(`${reportFile}: ${result.reason}`);
    });

  program
    .command('keys')
    .description("print the server's public key that signs verification reports")
    .option('--out <file>', 'write the PEM public key to this file')
    .action(async (options: { out?: string }, command: Command) => {
      // The key is public: no token needed.
      const client = new RepositoryClient({ server: serverOf(globals(command)), token: process.env.B365_TOKEN ?? '', signal: processSignal, fingerprint: fingerprintOf(globals(command)) });
      try {
        const keys = await client.keys();
        if (options.out) await fs.writeFile(options.out, keys[0]!.publicKey);
        if (globals(command).json) printJson({ keys });
        else for (const key of keys) process.stdout.write(`key ${key.keyId} (${key.algorithm})\n${key.publicKey}`);
      } finally {
        await client.close();
      }
    });
}
