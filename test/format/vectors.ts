// Golden vectors: inputs built from a seeded generator, with digests recorded once
// with the `b3sum` tool. If an input or a digest changes, the format has changed.
import { Prng, mixedContent, textLike } from '../helpers/content.js';

export interface Vector {
  name: string;
  bytes(): Buffer;
  digest: string;
}

export const chunkVectors: Vector[] = [
  {
    name: '1 MiB mixed text, random and zeros',
    bytes: () => mixedContent(new Prng(1), 1 << 20),
    digest: '5cbcf5b068c6c8281b077da6283b62176b658e4c5505ce396040d039d7556d6a',
  },
  {
    name: '1 MiB text-like (compressible)',
    bytes: () => textLike(new Prng(2), 1 << 20),
    digest: 'bbf3dca9ad6832049312710f89cce37ca3bee8c5b9ed0f6df5b985fe7af191ab',
  },
  {
    name: '300000 random bytes (stored uncompressed)',
    bytes: () => {
      const buffer = Buffer.alloc(300000);
      new Prng(3).fill(buffer);
      return buffer;
    },
    digest: '465db0f2c6c3599c0ce42059eaa0611604f2daaa7b20acf344c99ef05b54d153',
  },
  {
    name: '8 MiB mixed (two 4 MiB blocks)',
    bytes: () => mixedContent(new Prng(4), 8 << 20),
    digest: '1656c596888f18b9709ec08438f86d0547a3f5200831588fd33dce1e028ea45a',
  },
];
