// The repository's key layout: every key helper round-trips through its parser, keys
// fall under the prefixes that listings use, and a key of another kind parses as nothing.
import t from 'tap';
import {
  CHUNKS_PREFIX,
  IMAGES_PREFIX,
  QUARANTINE_PREFIX,
  REPORTS_PREFIX,
  chunkKey,
  digestOfChunkKey,
  imageStateKey,
  manifestKey,
  parseManifestKey,
  quarantineKey,
  reportKey,
} from '../../../server/store/store.js';
import { digestOf } from '../../../src/format/digest.js';

const digest = digestOf(Buffer.from('a chunk'));

t.test('chunk keys', async (t) => {
  const key = chunkKey(digest);
  t.equal(key, `chunks/${digest.slice(0, 2)}/${digest.slice(2, 4)}/${digest}`, 'the documented layout');
  t.ok(key.startsWith(CHUNKS_PREFIX));
  t.equal(digestOfChunkKey(key), digest, 'round trip');
  t.equal(digestOfChunkKey(`${key}.tmp`), null, 'a temporary file is not a chunk');
  t.equal(digestOfChunkKey(quarantineKey(digest)), null, 'a quarantined chunk is not in the chunk store');
  t.equal(digestOfChunkKey(`chunks/${digest}`), null, 'nor one outside the fan-out');
});

t.test('image keys', async (t) => {
  const where = { machine: 'alpha', timestamp: '20261207T221500Z' };
  const manifest = manifestKey(where.machine, where.timestamp);
  t.equal(manifest, 'images/alpha/20261207T221500Z/manifest.json');
  t.ok(manifest.startsWith(IMAGES_PREFIX));
  t.same(parseManifestKey(manifest), where, 'round trip');
  const state = imageStateKey(where.machine, where.timestamp);
  t.equal(state, 'images/alpha/20261207T221500Z/state.json', 'the state lies beside its manifest');
  t.equal(parseManifestKey(state), null, 'a state file is not a manifest');
});

t.test('quarantine and report keys', async (t) => {
  t.equal(quarantineKey(digest), `quarantine/${digest}`);
  t.ok(quarantineKey(digest).startsWith(QUARANTINE_PREFIX));
  t.equal(reportKey('20261207T221500Z-abcdef'), 'reports/20261207T221500Z-abcdef.json');
  t.ok(reportKey('x').startsWith(REPORTS_PREFIX));
});
