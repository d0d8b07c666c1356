import t from 'tap';
import { parseManifest, parseManifestText } from '../../src/format/manifest.js';
import { sampleManifest } from '../helpers/manifest.js';

t.test('a complete manifest validates', async (t) => {
  t.same(parseManifest(sampleManifest()), sampleManifest());
  t.same(parseManifestText(JSON.stringify(sampleManifest())).machine, 'pc-01');
});

t.test('problems are reported with their JSON path', async (t) => {
  const unknown = sampleManifest();
  Object.assign(unknown.disks[0]!.volumes[0]!, { colour: 'blue' });
  t.throws(() => parseManifest(unknown), { message: 'invalid manifest: /disks/0/volumes/0: unknown field "colour"' });

  const missing = sampleManifest();
  Reflect.deleteProperty(missing.disks[0]!, 'serial');
  t.throws(() => parseManifest(missing), { message: 'invalid manifest: /disks/0: missing field "serial"' });

  const badDigest = sampleManifest();
  badDigest.disks[0]!.volumes[0]!.index = 'xyz';
  t.throws(() => parseManifest(badDigest), /invalid manifest: \/disks\/0\/volumes\/0\/index: must match pattern/);

  const badMethod = sampleManifest();
  Object.assign(badMethod.disks[0]!.volumes[0]!, { method: 'magic' });
  t.throws(
    () => parseManifest(badMethod),
    /\/disks\/0\/volumes\/0\/method: must be one of "used-blocks", "raw", "swap-header-only"/,
  );

  const badType = sampleManifest();
  badType.stats.bytesRead = -1;
  t.throws(() => parseManifest(badType), /\/stats\/bytesRead: must be >= 0/);

  const pastEnd = sampleManifest();
  pastEnd.disks[0]!.volumes[0]!.size = 5 * 2 ** 30;
  t.throws(
    () => parseManifest(pastEnd),
    /\/disks\/0\/volumes\/0: volume ends at byte \d+, past the end of the \d+-byte disk/,
  );

  t.throws(() => parseManifestText('{"format": '), /manifest is not valid JSON/);
  t.throws(() => parseManifest([]), /invalid manifest: \/: must be object/);
});
