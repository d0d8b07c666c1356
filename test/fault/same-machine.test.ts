// Two `b365 image` of the same machine at once, of the same disk and of two different
// disks: both commit, or one is refused clearly; nothing committed is lost or wrong.
import t, { type Test } from 'tap';
import { assertNothingLost, FaultRig } from './helpers.js';

/** Both succeeded, or one was refused with a clear message (conflict, no stack trace). */
function bothOrOneRefused(t: Test, results: { exitCode: number; stderr: string }[]): void {
  t.ok(
    results.some((result) => result.exitCode === 0),
    'at least one upload commits',
  );
  for (const result of results) {
    if (result.exitCode === 0) continue;
    t.equal(result.exitCode, 5, 'the other is refused as a conflict', { stderr: result.stderr });
    t.notMatch(result.stderr, /\n\s+at /, 'with a message, not a stack trace');
  }
}
t.test('two uploads of the same machine at once', async (t) => {
  const rig = await FaultRig.start(t);
  const first = await rig.disk('same-a');
  const second = await rig.disk('same-b');
  await t.test('of the same disk', async (t) => {
    const runs = await Promise.all([rig.startImage(first, 'twin'), rig.startImage(first, 'twin')]);
    bothOrOneRefused(t, await Promise.all(runs.map((run) => run.done())));
  });
  await t.test('of different disks', async (t) => {
    const runs = await Promise.all([rig.startImage(first, 'twin'), rig.startImage(second, 'twin')]);
    bothOrOneRefused(t, await Promise.all(runs.map((run) => run.done())));
  });
  await assertNothingLost(t, rig);
});
