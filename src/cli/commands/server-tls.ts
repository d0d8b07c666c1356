// The TLS side of `b365 server`: the flags that choose the certificate (or plain HTTP),
// `b365 server fingerprint`, and reloading the certificate on SIGHUP.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { NotFoundError, UsageError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { ServerConfig } from '../../../server/config.js';
import type { RunningServer, ServerTransport } from '../../../server/main.js';
import { printJson } from '../output.js';

export interface TlsFlags {
  tlsCert?: string;
  tlsKey?: string;
  tlsName?: string[];
  insecureHttp?: boolean;
  insecureHttpAnywhere?: boolean;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function addTlsOptions(command: Command): Command {
  return command
    .option(
      '--tls-cert <file>',
      "serve this certificate (PEM, chain allowed) instead of the repository's self-signed one (the config's tls.cert)",
    )
    .option('--tls-key <file>', "the private key of --tls-cert (the config's tls.key)")
    .option(
      '--tls-name <name>',
      'a DNS name or address clients use, added to the self-signed certificate when it is made (repeatable)',
      collect,
    )
    .option('--insecure-http', 'plain HTTP instead of HTTPS, on a loopback address only')
    .option('--insecure-http-anywhere', 'plain HTTP on any address: tokens and disks cross the network in clear');
}

/** What the flags and the configuration ask for; flags win. */
export function transportOf(flags: TlsFlags, config: ServerConfig): ServerTransport {
  const cert = flags.tlsCert ?? config.tls.cert ?? undefined;
  const key = flags.tlsKey ?? (flags.tlsCert ? undefined : (config.tls.key ?? undefined));
  if (flags.insecureHttp || flags.insecureHttpAnywhere) {
    if (flags.tlsCert || flags.tlsKey)
      throw new UsageError(
        '--insecure-http and --tls-cert/--tls-key contradict each other: choose plain HTTP or HTTPS',
      );
    return { kind: 'http', anywhere: flags.insecureHttpAnywhere === true };
  }
  if ((cert === undefined) !== (key === undefined))
    throw new UsageError(
      '--tls-cert and --tls-key go together: give both files, or neither for the self-signed certificate',
    );
  if (cert && key) return { kind: 'https', files: { cert: path.resolve(cert), key: path.resolve(key) } };
  return { kind: 'https', names: [...config.tls.names, ...(flags.tlsName ?? [])] };
}

/** The lines `b365 server` prints about its certificate before it says where it listens. */
export function certificateNotice(running: RunningServer): string {
  const certificate = running.certificate;
  if (!certificate) return 'plain HTTP: no TLS certificate (--insecure-http)\n';
  const made = running.certificateCreated
    ? `new self-signed TLS certificate ${certificate.files.cert} (key ${certificate.files.key}, mode 0600)\n`
    : '';
  return `${made}certificate SHA-256 fingerprint: ${certificate.fingerprint}\n`;
}

/** SIGHUP reads the certificate files again; a bad file is logged and the old certificate stays. */
export function reloadOnHangup(running: RunningServer, log: Logger): () => void {
  const reload = () => {
    running.reloadCertificate().then(
      (certificate) =>
        log.warn(
          { fingerprint: certificate.fingerprint },
          'SIGHUP: TLS certificate reloaded; clients that pin the old fingerprint must be given the new one',
        ),
      (error: unknown) =>
        log.error(
          { error: errorMessage(error), fingerprint: running.certificate?.fingerprint ?? null },
          'SIGHUP: TLS certificate not reloaded, the current one stays',
        ),
    );
  };
  process.on('SIGHUP', reload);
  return () => process.off('SIGHUP', reload);
}

function readLeaf(file: string): X509Certificate {
  let pem: Buffer;
  try {
    pem = fs.readFileSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new NotFoundError(`no TLS certificate at ${file} yet: the server makes it on its first start`);
    throw new UsageError(`cannot read the TLS certificate ${file}: ${errorMessage(error)}`);
  }
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new UsageError(`${file} is not a PEM certificate: ${errorMessage(error)}`);
  }
}

export function registerFingerprint(server: Command, defaults: { repo: () => string }): void {
  server
    .command('fingerprint')
    .description("print the SHA-256 fingerprint of the server's TLS certificate, for clients' --fingerprint")
    .option(
      '--repo <dir>',
      "repository directory (B365_REPO, the config's repo); its keys/tls.crt is the self-signed certificate",
    )
    .option('--config <file>', 'server configuration (B365_SERVER_CONFIG): its tls.cert, if any, is the certificate')
    .option('--tls-cert <file>', 'the certificate the server is given instead')
    .action(async (options: { repo?: string; config?: string; tlsCert?: string }, command: Command) => {
      const { loadConfig } = await import('../../../server/config.js');
      const { selfSignedFiles } = await import('../../../server/tls.js');
      const config = loadConfig(options.config ?? process.env.B365_SERVER_CONFIG ?? null);
      const repo = options.repo ?? process.env.B365_REPO ?? config.repo ?? defaults.repo();
      const file = path.resolve(options.tlsCert ?? config.tls.cert ?? selfSignedFiles(repo).cert);
      const leaf = readLeaf(file);
      if (command.optsWithGlobals().json)
        printJson({
          fingerprint: leaf.fingerprint256,
          file,
          subject: leaf.subject,
          subjectAltName: leaf.subjectAltName ?? null,
          validTo: leaf.validTo,
        });
      else process.stdout.write(`${leaf.fingerprint256}\n`);
    });
}
