// The server's clock jumps (B365_CLOCK_OFFSET_FILE moves the time the server reads):
// forward and backward between images, and forward by days in the middle of an upload
// followed by garbage collection with no grace. Image ids stay unique, every image keeps
// its own content, and no chunk an unfinished upload needs is collected.
import fs from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { b365 } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { assertNothingLost, changeDisk, FaultRig, succeeded } from './helpers.js';

const DAY = 24 * 3600 * 1000;

async function clockFile(t: Test): Promise<{ file: string; set(offsetMs: number): Promise<void> }> {
  const file = path.join(await tempDir(t, 'b365-clock-'), 'offset');
  const set = async (offsetMs: number) => {
    await fs.writeFile(`${file}.new`, String(offsetMs));
    await fs.rename(`${file}.new`, file);
  };
  await set(0);
  return { file, set };
}

t.test('the clock jumps forward and back between images', async (t) => {
  const clock = await clockFile(t);
  const rig = await FaultRig.start(t, { env: { B365_CLOCK_OFFSET_FILE: clock.file } });
  const disk = await rig.disk('tardis');
  const ids: string[] = [];
  for (const offset of [0, 2 * DAY, -3 * DAY, -3 * DAY]) {
    await clock.set(offset);
    if (ids.length) await changeDisk(t, disk, 1);
    const result = await rig.image(disk, 'tardis');
    succeeded(t, result, `image with the clock at ${offset / DAY} days`);
    ids.push(result.json.image);
  }
  t.equal(new Set(ids).size, ids.length, `every image has its own id (${ids.join(', ')})`);
  const listed = (await rig.images()).map((image) => image.id).sort();
  t.same(listed, [...ids].sort(), 'all of them are listed');
  const latest = await b365(['images', 'show', 'tardis@latest', '--json'], { env: rig.env });
  t.ok(ids.includes(latest.json?.id), `tardis@latest names one of them (${latest.json?.id})`);
  await clock.set(0);
  await assertNothingLost(t, rig);
});

t.test('the clock jumps days ahead during an upload, then garbage collection runs with no grace', async (t) => {
  const clock = await clockFile(t);
  const rig = await FaultRig.start(t, { env: { B365_CLOCK_OFFSET_FILE: clock.file } });
  const disk = await rig.disk('leased', { dataMiB: 64 });
  const client = await rig.startImage(disk, 'leased');
  await rig.waitForChunks(20);
  await clock.set(3 * DAY);
  const gc = await b365(['gc', '--grace', '0s', '--json'], { env: rig.env });
  succeeded(t, gc, 'the collection runs');
  const result = await client.done();
  succeeded(t, result, 'the upload still commits');
  await assertNothingLost(t, rig);
});
