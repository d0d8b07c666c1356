// The daily summary's repository line: sizes read in the unit that suits them, so a
// small repository does not report "0.0 GiB stored".
import t from 'tap';
import { summaryNotification } from '../../../server/notify/message.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function summary(storedBytes: number, freeBytes: number | null) {
  const now = Date.UTC(2026, 11, 7, 6, 0, 0);
  return summaryNotification({
    since: now - 86_400_000,
    now,
    runs: [{ machine: 'pc-1', ok: 1, failed: 0, lastImage: 'pc-1/2026-12-07T02:00:00Z' }],
    openIncidents: [],
    images: 3,
    storedBytes,
    freeBytes,
  });
}

t.test('stored and free space in the unit that suits each', async (t) => {
  const text = summary(3 * MiB, 200 * GiB).text;
  t.match(text, /Repository: 3 images, 3\.0 MiB stored, 200\.0 GiB free\./);
});

t.test('free space left out when the store cannot tell it', async (t) => {
  t.match(summary(1.5 * GiB, null).text, /Repository: 3 images, 1\.5 GiB stored\.\n/);
});
