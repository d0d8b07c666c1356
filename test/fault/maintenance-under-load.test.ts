// Garbage collection with no grace, prune and content verification looping while three
// clients image their disks again and again: every round is clean, every kept image whole.
import t from 'tap';
import { b365 } from '../helpers/cli.js';
import { assertNothingLost, changeDisk, FaultRig, succeeded } from './helpers.js';

t.test('garbage collection, prune and content verification loop while three clients upload', async (t) => {
  const rig = await FaultRig.start(t);
  const machines = ['one', 'two', 'three'];
  const disks = await Promise.all(machines.map((machine) => rig.disk(machine, { dataMiB: 16 })));
  succeeded(
    t,
    await b365(['policy', 'set', 'default', '--keep-last', '2'], { env: rig.env }),
    'retention: keep the last 2',
  );
  let uploading = true;
  const maintenance = (async () => {
    const problems: string[] = [];
    let rounds = 0;
    while (uploading) {
      rounds++;
      const gc = await b365(['gc', '--grace', '0s', '--json'], { env: rig.env });
      if (gc.exitCode !== 0 && gc.exitCode !== 5) problems.push(`gc exited ${gc.exitCode}: ${gc.stderr}`);
      const prune = await b365(['prune', '--json'], { env: rig.env });
      if (prune.exitCode !== 0) problems.push(`prune exited ${prune.exitCode}: ${prune.stderr}`);
      const verify = await b365(['verify', '--all', '--level', 'content', '--json'], { env: rig.env });
      if (verify.exitCode !== 0)
        problems.push(
          `verify exited ${verify.exitCode}: ${JSON.stringify(verify.json?.report?.summary ?? verify.stderr)}`,
        );
    }
    return { problems, rounds };
  })();
  const uploads = machines.map(async (machine, position) => {
    for (let round = 0; round < 3; round++) {
      if (round > 0) await changeDisk(t, disks[position]!, 1);
      succeeded(
        t,
        await rig.image(disks[position]!, machine),
        `${machine}: image ${round + 1} commits during maintenance`,
      );
    }
  });
  await Promise.all(uploads);
  uploading = false;
  const { problems, rounds } = await maintenance;
  t.same(problems, [], `${rounds} rounds of gc, prune and verify, every one clean`);
  // Retention removed the oldest images on purpose; the two newest of each machine stay.
  succeeded(t, await b365(['prune', '--json'], { env: rig.env }), 'a last prune');
  for (const machine of machines) {
    const own = [...rig.committed.keys()].filter((id) => id.startsWith(`${machine}@`)).sort();
    for (const id of own.slice(0, -2)) rig.committed.delete(id);
  }
  await assertNothingLost(t, rig);
});
