// `b365 verify`: run a verification on the server (or locally with --local) and wait
// for its signed report; `b365 verify check` checks a report offline; `b365 keys`.
import fs from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { RepositoryClient } from '../../client/repository.js';
import { type LocalVerification, verifyLocally } from '../../client/verify-local.js';
import { UsageError, VerificationError } from '../../core/errors.js';
import { checkSignedDocument, parsePublicKey, type SignedDocument } from '../../format/signed-report.js';
import { anonymousClientFor, clientFor, globals } from '../context.js';
import { helpShowsDefault } from '../help.js';
import { byteProgress, printJson, printTable } from '../output.js';
import { formatWhen, serverTimeFormat, type TimeFormat } from '../time-format.js';
import type { VerificationJob } from '../../format/verification.js';
import { plural } from '../../core/plural.js';

interface VerifyOptions {
  all?: boolean;
  level: string;
  local?: boolean;
  out?: string;
}

function printVerifications(jobs: VerificationJob[], times: TimeFormat): void {
  printTable(
    jobs.map((job) => ({
      id: job.id,
      level: job.level,
      scope: job.scope.all
        ? 'all images'
        : job.scope.images.length === 1
          ? job.scope.images[0]!
          : plural(job.scope.images.length, 'image'),
      result:
        job.state === 'done' ? job.result : job.state === 'error' ? `error: ${job.error ?? 'unknown'}` : job.state,
      started: formatWhen(job.startedAt, times),
      finished: formatWhen(job.finishedAt, times),
    })),
    ['id', 'level', 'scope', 'result', 'started', 'finished'],
  );
}

/** The parts of a signed verification report the summary prints. */
type SignedVerification = SignedDocument<{
  summary: { ok: number; images: number; chunksVerified: number; chunksMissing: number; chunksCorrupt: number };
  images: { image: string; result: string; problems: string[] }[];
}>;

export function registerVerify(program: Command): void {
  const verify = program.command('verify').description('verify stored images and get a signed report');

  const run = verify
    .command('run', { isDefault: true })
    .description('verify images on the server (the default) or locally')
    .argument('[images...]', 'image ids or MACHINE@latest')
    .option('--all', 'every image in the repository')
    .option('--level <level>', 'structural, content or restore-stream', 'content')
    .option('--local', 'recompute everything on this machine, trusting nothing the server says')
    .option('--out <file>', 'also write the signed report to this file')
    .action(runVerification);

  helpShowsDefault(
    verify,
    run,
    '(IMAGE... | --all) [--level structural|content|restore-stream] [--local] [--out FILE]',
  );

  verify
    .command('list')
    .description('verification jobs, newest first: level, scope, result, when')
    .action(listVerifications);

  verify
    .command('check')
    .description('check a signed report offline with the server public key')
    .argument('<report>', 'report file (JSON)')
    .requiredOption('--pubkey <file>', 'PEM public key (from `b365 keys`)')
    .action(checkReport);

  program
    .command('keys')
    .description("print the server's public key that signs verification reports")
    .option('--out <file>', 'write the PEM public key to this file')
    .action(showKeys);
}

async function runVerification(images: string[], options: VerifyOptions, command: Command): Promise<void> {
  const json = globals(command).json === true;
  if (!options.all && images.length === 0) throw new UsageError('name images to verify, or use --all');
  const client = await clientFor(command, 'transfer');
  try {
    if (options.local) await verifyHere(client, images, json);
    else await verifyOnServer(client, images, options, json);
  } finally {
    await client.close();
  }
}

/** `--local`: every chunk fetched and re-hashed on this machine. */
async function verifyHere(client: RepositoryClient, images: string[], json: boolean): Promise<void> {
  const results: LocalVerification[] = [];
  for (const image of images) {
    const progress = byteProgress(`verifying ${image} locally`, !json);
    results.push(await verifyLocally(client, image, (done, total) => progress.update(done, total)));
    progress.stop();
  }
  if (json) printJson({ results });
  else printLocalResults(results);
  if (results.some((result) => result.result !== 'ok'))
    throw new VerificationError('local verification failed', { details: { results } });
}

function printLocalResults(results: LocalVerification[]): void {
  for (const result of results) {
    process.stdout.write(
      `${result.image}: ${result.result}, ${plural(result.chunksVerified, 'chunk')} re-hashed here\n`,
    );
    for (const volume of result.volumes)
      process.stdout.write(
        `  ${volume.ok ? 'ok  ' : 'FAIL'} ${volume.disk}/${volume.volume} ${volume.computed ?? ''}${volume.problem ? ` (${volume.problem})` : ''}\n`,
      );
  }
}

/** A job on the server, waited for; its signed report printed and, with --out, kept. */
async function verifyOnServer(
  client: RepositoryClient,
  images: string[],
  options: VerifyOptions,
  json: boolean,
): Promise<void> {
  const started = await client.startVerification({ images, all: options.all, level: options.level });
  if (!json) process.stderr.write(`verification ${started.id} (${started.level}) started\n`);
  const job = await finishedJob(client, started);
  if (job.state === 'error') throw new VerificationError(`verification ${job.id} could not run: ${job.error}`);
  const bytes = await client.verificationReport(job.id);
  if (job.reportNotStored)
    process.stderr.write(
      `warning: the signed report could not be stored in the repository (${job.reportNotStored}); keep this copy with --out\n`,
    );
  if (options.out) await fs.writeFile(options.out, bytes);
  const signed = JSON.parse(bytes.toString('utf8')) as SignedVerification;
  if (json) printJson(signed);
  else printServerReport(job, signed);
  if (job.result !== 'ok') throw new VerificationError(`verification ${job.id} found problems`);
}

async function finishedJob(client: RepositoryClient, started: VerificationJob): Promise<VerificationJob> {
  let job = started;
  while (job.state === 'queued' || job.state === 'running') {
    await sleep(300);
    job = await client.verification(job.id);
  }
  return job;
}

function printServerReport(job: VerificationJob, signed: SignedVerification): void {
  const { summary } = signed.report;
  process.stdout.write(
    `verification ${job.id}: ${job.result} — ${summary.ok} of ${plural(summary.images, 'image')} ok, ${plural(summary.chunksVerified, 'chunk')} verified, ${summary.chunksMissing} missing, ${summary.chunksCorrupt} corrupt\n`,
  );
  for (const image of signed.report.images)
    if (image.result !== 'ok') process.stdout.write(`  FAIL ${image.image}: ${image.problems.join('; ')}\n`);
  process.stdout.write(`report digest ${job.reportDigest}, signed by key ${signed.signature.keyId}\n`);
}

async function listVerifications(_options: unknown, command: Command): Promise<void> {
  const client = await clientFor(command);
  try {
    const { verifications } = await client.http.call<{ verifications: VerificationJob[] }>('GET', '/verifications');
    if (globals(command).json) printJson({ verifications });
    else if (verifications.length === 0) process.stdout.write('no verification has run yet\n');
    else printVerifications(verifications, await serverTimeFormat(client));
  } finally {
    await client.close();
  }
}

async function checkReport(reportFile: string, options: { pubkey: string }, command: Command): Promise<void> {
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
}

async function showKeys(options: { out?: string }, command: Command): Promise<void> {
  // The key is public: no token needed.
  const client = anonymousClientFor(command);
  try {
    const keys = await client.keys();
    if (globals(command).json) return printJson({ keys });
    const current = keys[0]!;
    // Only PEM goes to stdout or the file, so either is a key file openssl reads as is.
    if (options.out) {
      await fs.writeFile(options.out, current.publicKey);
      process.stderr.write(`wrote public key ${current.keyId} (${current.algorithm}) to ${options.out}\n`);
      return;
    }
    for (const key of keys) {
      process.stderr.write(`key ${key.keyId} (${key.algorithm})\n`);
      process.stdout.write(key.publicKey);
    }
  } finally {
    await client.close();
  }
}
