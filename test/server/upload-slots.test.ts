// The upload slot scheduler alone: shares per machine, turns between machines, and
// requests withdrawn while they wait.
import t from 'tap';
import { UploadSlots } from '../../server/upload-slots.js';

function recorder(slots: UploadSlots) {
  const started: string[] = [];
  const releases = new Map<string, () => void>();
  const enter = (key: string, name: string) =>
    slots.enter(key, (release) => {
      started.push(name);
      releases.set(name, release);
    });
  return { started, enter, release: (name: string) => releases.get(name)!() };
}

t.test('no machine holds more than its share, even when it came first', async (t) => {
  const slots = new UploadSlots(4, 2);
  const { started, enter } = recorder(slots);
  for (let index = 0; index < 6; index++) enter('greedy', `greedy${index}`);
  t.same(started, ['greedy0', 'greedy1'], 'the first machine gets its share only');
  enter('other', 'other0');
  enter('other', 'other1');
  t.same(started.slice(2), ['other0', 'other1'], 'another machine starts at once');
  t.same(slots.usage(), { active: 4, waiting: 4, byKey: { greedy: 2, other: 2 } });
});

t.test('freed slots go to waiting machines in turn', async (t) => {
  const slots = new UploadSlots(2, 2);
  const { started, enter, release } = recorder(slots);
  enter('a', 'a0');
  enter('a', 'a1');
  for (const name of ['a2', 'a3', 'a4']) enter('a', name);
  for (const name of ['b0', 'b1']) enter('b', name);
  enter('c', 'c0');
  release('a0');
  release('a1');
  release('b0');
  release('a2');
  t.same(started, ['a0', 'a1', 'a2', 'b0', 'c0', 'a3'], 'a, b, c, then a again');
  release('a2');
  t.equal(slots.usage().active, 2, 'releasing twice frees one slot only');
});

t.test('a request withdrawn while waiting never starts', async (t) => {
  const slots = new UploadSlots(1, 1);
  const { started, enter, release } = recorder(slots);
  enter('a', 'a0');
  const withdraw = enter('b', 'b0');
  enter('b', 'b1');
  withdraw();
  release('a0');
  t.same(started, ['a0', 'b1']);
  t.same(slots.usage(), { active: 1, waiting: 0, byKey: { b: 1 } });
});
