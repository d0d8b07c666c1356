// The per-address failure limiter alone, on a clock the test moves.
import t from 'tap';
import { limitKeyOf } from '../../server/client-address.js';
import { FailureLimiter } from '../../server/rate-limit.js';

t.test('each address has its own budget, renewed as its failures age out', async (t) => {
  let now = 1_000_000;
  const limiter = new FailureLimiter(() => now, 3, 60_000);
  for (let attempt = 0; attempt < 3; attempt++) {
    t.equal(limiter.retryAfter('a'), 0);
    limiter.fail('a');
    now += 1000;
  }
  t.equal(limiter.retryAfter('a'), 60_000 - 3000, 'a waits until its oldest failure leaves the window');
  for (let address = 0; address < 1000; address++) limiter.fail(`other-${address}`);
  t.equal(limiter.retryAfter('b'), 0, "nobody else's failures count against b");
  now += 60_000;
  t.equal(limiter.retryAfter('a'), 0, 'a may try again once its failures are old');
});

t.test('memory stays bounded under a flood of addresses', async (t) => {
  const limiter = new FailureLimiter(() => 0, 5, 60_000, 100);
  for (let address = 0; address < 1000; address++) limiter.fail(`address-${address}`);
  t.equal(limiter.size, 100);
});

t.test('an IPv6 host counts as its /64', async (t) => {
  t.equal(limitKeyOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  t.equal(limitKeyOf('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
  t.equal(limitKeyOf('2001:db8::1'), '2001:db8:0:0::/64');
  t.equal(limitKeyOf('192.0.2.1'), '192.0.2.1');
});
