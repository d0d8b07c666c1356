// Certificates for tests, made with the openssl command: self-signed ones, a private CA
// and certificates it signs; and openssl's own reading of a certificate as the oracle.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';

export interface CertificateFiles {
  cert: string;
  key: string;
}

function subjectAltName(names: string[]): string {
  return names.map((name) => (/^[\d.]+$|:/.test(name) ? `IP:${name}` : `DNS:${name}`)).join(',');
}

/** A P-256 key and a self-signed certificate for it, valid 30 days, with the given extensions. */
async function selfSignedPair(files: CertificateFiles, subject: string, extensions: string[]): Promise<void> {
  await execa('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '30',
    '-subj',
    subject,
    ...extensions.flatMap((extension) => ['-addext', extension]),
    '-keyout',
    files.key,
    '-out',
    files.cert,
  ]);
}

/** A self-signed EC certificate for `names` (the first is its CN). */
export async function selfSignedCertificate(
  directory: string,
  base: string,
  names: string[],
): Promise<CertificateFiles> {
  const files = { cert: path.join(directory, `${base}.crt`), key: path.join(directory, `${base}.key`) };
  await selfSignedPair(files, `/CN=${names[0]}`, [`subjectAltName=${subjectAltName(names)}`]);
  return files;
}

/** A private CA (certificate and key). */
export async function certificateAuthority(directory: string): Promise<CertificateFiles> {
  const files = { cert: path.join(directory, 'ca.crt'), key: path.join(directory, 'ca.key') };
  await selfSignedPair(files, '/CN=Test CA', [
    'basicConstraints=critical,CA:TRUE',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return files;
}

/** A server certificate for `names` signed by `ca`. */
export async function issuedCertificate(
  directory: string,
  base: string,
  ca: CertificateFiles,
  names: string[],
): Promise<CertificateFiles> {
  const files = { cert: path.join(directory, `${base}.crt`), key: path.join(directory, `${base}.key`) };
  const request = path.join(directory, `${base}.csr`);
  const extensions = path.join(directory, `${base}.ext`);
  await execa('openssl', [
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    `/CN=${names[0]}`,
    '-keyout',
    files.key,
    '-out',
    request,
  ]);
  await fs.writeFile(
    extensions,
    `subjectAltName=${subjectAltName(names)}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n`,
  );
  await execa('openssl', [
    'x509',
    '-req',
    '-in',
    request,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-days',
    '30',
    '-extfile',
    extensions,
    '-out',
    files.cert,
  ]);
  return files;
}

/** The SHA-256 fingerprint of the (first) certificate in `file`, as openssl prints it. */
export async function opensslFingerprint(file: string): Promise<string> {
  const { stdout } = await execa('openssl', ['x509', '-in', file, '-noout', '-fingerprint', '-sha256']);
  return stdout.trim().replace(/^sha256 Fingerprint=/i, '');
}

export async function opensslText(file: string): Promise<string> {
  return (await execa('openssl', ['x509', '-in', file, '-noout', '-text'])).stdout;
}
