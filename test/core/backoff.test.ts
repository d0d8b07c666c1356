// The one backoff: delays double up to their cap, jitter stays inside its band, a success
// starts the count again, and a stop cuts a sleep short at once.
import t from 'tap';
import { abortableSleep, Backoff, backoffDelay, sleepUntil } from '../../src/core/backoff.js';

t.test('delays double from the initial one and stop at the cap', async (t) => {
  const policy = { initialMs: 1000, maxMs: 30_000 };
  t.same(
    [1, 2, 3, 4, 5, 6, 7].map((failures) => backoffDelay(policy, failures)),
    [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000],
  );
  t.equal(backoffDelay(policy, 0), 1000, 'no failure yet waits the initial delay');
  t.equal(backoffDelay(policy, 100_000), 30_000, 'a very long outage stays at the cap');
});

t.test('jitter spreads each delay inside its band, around the capped value', async (t) => {
  const policy = { initialMs: 250, maxMs: 10_000, jitter: 0.25 };
  t.equal(
    backoffDelay(policy, 1, () => 0),
    187.5,
  );
  t.equal(
    backoffDelay(policy, 1, () => 0.5),
    250,
  );
  t.equal(
    backoffDelay(policy, 20, () => 1),
    12_500,
    'the cap is jittered too, as the HTTP retries did',
  );
  for (let index = 0; index < 200; index++) {
    const delay = backoffDelay(policy, 3);
    t.ok(delay >= 750 && delay <= 1250, `${delay} within 1000 ± 25 %`);
  }
});

t.test('a backoff counts failures, says when to retry, and starts again after a success', async (t) => {
  let policy = { initialMs: 100, maxMs: 1000 };
  const backoff = new Backoff(() => policy);
  t.ok(backoff.due(0), 'due at once before any failure');
  t.equal(backoff.fail(5000), 5100);
  t.equal(backoff.fail(6000), 6200);
  t.equal(backoff.fail(7000), 7400);
  t.equal(backoff.failures, 3);
  t.notOk(backoff.due(7399));
  t.ok(backoff.due(7400));
  backoff.retryNow();
  t.ok(backoff.due(0), 'retryNow allows an attempt at once');
  t.equal(backoff.fail(8000), 8800, 'and keeps the count: the next failure waits longer');
  policy = { initialMs: 100, maxMs: 500 };
  t.equal(backoff.fail(9000), 9500, 'a changed policy applies from the next failure');
  backoff.reset();
  t.equal(backoff.failures, 0);
  t.ok(backoff.due(0));
  t.equal(backoff.fail(10_000), 10_100, 'after a success the next failure waits the initial delay');
});

t.test('an abort cuts a sleep short at once', async (t) => {
  const controller = new AbortController();
  const started = Date.now();
  setTimeout(() => controller.abort(new Error('stopping')), 50);
  t.equal(await abortableSleep(10_000, controller.signal), false, 'reports that it was cut short');
  t.ok(Date.now() - started < 1000, `woke ${Date.now() - started} ms after it began`);
  t.equal(await abortableSleep(10_000, controller.signal), false, 'an aborted signal does not sleep at all');
  t.equal(await abortableSleep(20), true, 'a sleep that runs out reports so');
});

t.test('sleepUntil follows a clock that moves, and stops on abort', async (t) => {
  let offset = 0;
  const clock = { now: () => Date.now() + offset };
  const target = clock.now() + 3600_000;
  setTimeout(() => {
    offset = 3600_000;
  }, 100);
  const started = Date.now();
  t.equal(await sleepUntil(clock, target, { stepMs: 20 }), true, 'an hour on the clock passed');
  t.ok(Date.now() - started < 1000, 'as soon as the clock jumped');

  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  const before = Date.now();
  t.equal(await sleepUntil(clock, clock.now() + 3600_000, { stepMs: 1000, signal: controller.signal }), false);
  t.ok(Date.now() - before < 500, 'the abort ends the wait without waiting out its step');
});
