// Times in tables: wall time and UTC offset in a given zone (daylight saving included),
// and ages in both directions.
import t from 'tap';
import { formatAge, formatLocalTime, formatWhen } from '../../src/cli/time-format.js';

const at = (iso: string) => Date.parse(iso);

t.test('local wall time with the zone offset', async (t) => {
  t.equal(
    formatLocalTime(at('2026-12-07T19:02:40Z'), 'Asia/Kolkata'),
    '2026-12-08 00:32 +05:30',
    'crosses midnight into the next day',
  );
  t.equal(formatLocalTime(at('2026-12-07T19:02:40Z'), 'UTC'), '2026-12-07 19:02 +00:00');
  t.equal(formatLocalTime(at('2026-07-01T12:00:00Z'), 'America/New_York'), '2026-07-01 08:00 -04:00', 'summer time');
  t.equal(formatLocalTime(at('2026-01-01T12:00:00Z'), 'America/New_York'), '2026-01-01 07:00 -05:00', 'winter time');
  t.equal(
    formatLocalTime(at('2026-01-01T00:30:00Z'), 'Europe/Paris'),
    '2026-01-01 01:30 +01:00',
    'hours 00-23, never 24',
  );
});

t.test('ages', async (t) => {
  const now = at('2026-12-07T12:00:00Z');
  t.equal(formatAge(now - 2000, now), 'just now');
  t.equal(formatAge(now - 42_000, now), '42 s ago');
  t.equal(formatAge(now - 5 * 60_000 - 10_000, now), '5 min ago');
  t.equal(formatAge(now - 3 * 3600_000, now), '3 h ago');
  t.equal(formatAge(now - 47 * 3600_000, now), '47 h ago');
  t.equal(formatAge(now - 50 * 3600_000, now), '2 d ago');
  t.equal(formatAge(now + 3 * 3600_000 + 60_000, now), 'in 3 h', 'times ahead (the next run)');
});

t.test('a table cell', async (t) => {
  const format = { zone: 'Asia/Kolkata', now: at('2026-12-07T21:02:40Z') };
  t.equal(formatWhen('2026-12-07T19:02:40.000Z', format), '2026-12-08 00:32 +05:30 (2 h ago)');
  t.equal(formatWhen(null, format), null, 'no time: the table shows "-"');
});
