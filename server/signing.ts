// The server's Ed25519 signing key, made on first start and kept in the repository
// directory (keys/signing.pem, mode 0600). Its public half is served at /api/v1/keys.
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { writePrivateFile } from './private-file.js';
import { canonicalJson, keyIdOf, type SignedDocument } from '../src/format/signed-report.js';

export class SigningKey {
  private constructor(
    private readonly privateKey: KeyObject,
    readonly publicKey: KeyObject,
  ) {}

  get keyId(): string {
    return keyIdOf(this.publicKey);
  }

  get publicKeyPem(): string {
    return this.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  }

  static async load(directory: string): Promise<SigningKey> {
    const file = path.join(directory, 'keys', 'signing.pem');
    let pem: string;
    try {
      pem = await fs.readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      const { privateKey } = generateKeyPairSync('ed25519');
      pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
      await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      await writePrivateFile(file, pem);
    }
    await fs.chmod(path.dirname(file), 0o700);
    await fs.chmod(file, 0o600);
    const privateKey = createPrivateKey(pem);
    return new SigningKey(privateKey, createPublicKey(privateKey));
  }

  sign<T>(report: T): SignedDocument<T> {
    const value = sign(null, Buffer.from(canonicalJson(report)), this.privateKey).toString('base64');
    return { report, signature: { algorithm: 'ed25519', keyId: this.keyId, value } };
  }
}
