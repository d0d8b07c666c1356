// The server's TLS certificate: a self-signed one made with openssl on first start and kept
// in the repository (keys/tls.key 0600, keys/tls.crt), or the operator's own files. Loading
// checks that certificate and key belong together, so a bad file never replaces a good one.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { NotFoundError, UnavailableError, UsageError, errorMessage } from '../src/core/errors.js';
import { writePrivateFile } from './private-file.js';

/** Long, because every pinned client must be told the new fingerprint when it changes. */
export const SELF_SIGNED_VALIDITY_DAYS = 3650;

export interface CertificateFiles {
  cert: string;
  key: string;
}

export interface LoadedCertificate {
  files: CertificateFiles;
  cert: Buffer;
  key: Buffer;
  /** SHA-256 of the leaf certificate, as `openssl x509 -fingerprint -sha256` prints it. */
  fingerprint: string;
  subject: string;
  validTo: string;
}

export function selfSignedFiles(repo: string): CertificateFiles {
  return { cert: path.join(repo, 'keys', 'tls.crt'), key: path.join(repo, 'keys', 'tls.key') };
}

const DNS_NAME = /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** A name or address for the certificate, as given with --tls-name or the config's tls.names. */
export function checkTlsName(name: string): string {
  const bare = name.trim().replace(/^\[|\]$/g, '');
  if (net.isIP(bare) || DNS_NAME.test(bare)) return bare;
  throw new UsageError(`--tls-name ${JSON.stringify(name)} is neither a DNS name nor an IP address`);
}

/** The host's own names and addresses: what clients on the network may dial. */
export async function hostNames(): Promise<string[]> {
  const names = ['localhost', '127.0.0.1', '::1', os.hostname()];
  const fqdn = await execa('hostname', ['--fqdn'], { reject: false, timeout: 3000 });
  if (fqdn.exitCode === 0) names.push(String(fqdn.stdout).trim());
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const entry of addresses ?? []) {
      // Link-local addresses need a zone and name no stable place; nobody dials them.
      if (!entry.internal && !entry.address.toLowerCase().startsWith('fe80:')) names.push(entry.address);
    }
  }
  return names.filter((name) => net.isIP(name) || DNS_NAME.test(name));
}

function opensslConfig(commonName: string, names: string[]): string {
  const alternatives = names.map((name, index) => `${net.isIP(name) ? 'IP' : 'DNS'}.${index + 1} = ${name}`);
  return [
    '[req]',
    'distinguished_name = subject',
    'prompt = no',
    'x509_extensions = server',
    '[subject]',
    `CN = ${commonName}`,
    '[server]',
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature',
    'extendedKeyUsage = serverAuth',
    'subjectKeyIdentifier = hash',
    'subjectAltName = @names',
    '[names]',
    ...alternatives,
    '',
  ].join('\n');
}

/** Make a self-signed EC P-256 certificate for `names` with openssl, into `files`. */
async function createSelfSigned(files: CertificateFiles, names: string[]): Promise<void> {
  const unique = [...new Set(names)];
  const commonName = (unique.find((name) => !net.isIP(name) && name !== 'localhost') ?? 'localhost').slice(0, 64);
  // Made beside the keys, inside the private repository: the key never touches a shared
  // /tmp, and a sandboxed service whose only writable path is its repository can make it.
  await fs.mkdir(path.dirname(files.key), { recursive: true, mode: 0o700 });
  const work = await fs.mkdtemp(path.join(path.dirname(files.key), '.new-tls-'));
  try {
    await fs.chmod(work, 0o700);
    const config = path.join(work, 'openssl.cnf');
    await fs.writeFile(config, opensslConfig(commonName, unique));
    const [key, cert] = [path.join(work, 'tls.key'), path.join(work, 'tls.crt')];
    const args = [
      'req',
      '-x509',
      '-config',
      config,
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-sha256',
      '-days',
      String(SELF_SIGNED_VALIDITY_DAYS),
      '-keyout',
      key,
      '-out',
      cert,
    ];
    const made = await execa('openssl', args, { reject: false });
    if (made.exitCode !== 0) {
      const why =
        made.failed && made.exitCode === undefined
          ? 'the openssl command is missing (apt-get install openssl)'
          : String(made.stderr).trim();
      throw new UnavailableError(
        `cannot create the server's TLS certificate: ${why}; or give --tls-cert and --tls-key`,
      );
    }
    // Key first: a certificate on disk always has its key beside it.
    await writePrivateFile(files.key, await fs.readFile(key, 'utf8'));
    await writePrivateFile(files.cert, await fs.readFile(cert, 'utf8'));
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** Read and check a certificate (the leaf first, a chain may follow) and its key. */
export async function loadCertificate(files: CertificateFiles): Promise<LoadedCertificate> {
  let cert: Buffer;
  let key: Buffer;
  try {
    [cert, key] = await Promise.all([fs.readFile(files.cert), fs.readFile(files.key)]);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const message = `cannot read the TLS certificate or key (${files.cert}, ${files.key}): ${errorMessage(error)}`;
    throw code === 'ENOENT' ? new NotFoundError(message) : new UsageError(message);
  }
  try {
    const leaf = new X509Certificate(cert);
    if (!leaf.checkPrivateKey(createPrivateKey(key))) throw new Error('the key does not belong to the certificate');
    return {
      files,
      cert,
      key,
      fingerprint: leaf.fingerprint256,
      subject: leaf.subject.replace(/\n/g, ', '),
      validTo: leaf.validTo,
    };
  } catch (error) {
    throw new UsageError(`unusable TLS certificate ${files.cert} with key ${files.key}: ${errorMessage(error)}`);
  }
}

/** The repository's self-signed certificate, made on first use for the host's names and `extraNames`. */
export async function ensureSelfSigned(
  repo: string,
  extraNames: string[],
): Promise<{ certificate: LoadedCertificate; created: boolean }> {
  const files = selfSignedFiles(repo);
  const present = await Promise.all(
    [files.cert, files.key].map((file) =>
      fs.access(file).then(
        () => true,
        () => false,
      ),
    ),
  );
  if (present.every(Boolean)) return { certificate: await loadCertificate(files), created: false };
  await createSelfSigned(files, [...(await hostNames()), ...extraNames.map(checkTlsName)]);
  return { certificate: await loadCertificate(files), created: true };
}
