// One reading of durations for every option and every configuration setting.
import t from 'tap';
import { policyChange } from '../../src/cli/commands/policy.js';
import { UsageError } from '../../src/core/errors.js';
import { isDuration, parseDurationMs, parseDurationSeconds } from '../../src/core/duration.js';
import { parseConfig } from '../../server/config.js';

t.test('bare numbers are seconds, units s m h d w', async (t) => {
  t.equal(parseDurationMs('0'), 0);
  t.equal(parseDurationMs('0s'), 0);
  t.equal(parseDurationMs('90'), 90_000);
  t.equal(parseDurationMs('90s'), 90_000);
  t.equal(parseDurationMs(' 30m '), 1_800_000);
  t.equal(parseDurationMs('1.5h'), 5_400_000);
  t.equal(parseDurationMs('7d'), 7 * 86_400_000);
  t.equal(parseDurationMs('2w'), 14 * 86_400_000);
  t.equal(parseDurationMs(45), 45_000, 'a JSON number is seconds');
  t.equal(parseDurationSeconds('4h'), 14_400);
  t.ok(isDuration('90') && isDuration('7d') && !isDuration('2026-11-01T00:00:00Z'));
});

t.test('anything else is refused with the name of the option', async (t) => {
  for (const bad of ['', '-5', '5x', '1h30m', 'h', '5 minutes', '1e3']) {
    t.throws(() => parseDurationMs(bad, '--ttl'), UsageError, JSON.stringify(bad));
  }
  t.throws(() => parseDurationMs('soon', '--ttl'), {
    message: /^--ttl: cannot read duration "soon"; use seconds or a number with s, m, h, d or w/,
  });
  t.throws(() => parseDurationMs(-1, 'x'), UsageError);
});

t.test('command-line options and the server configuration agree', async (t) => {
  const change = policyChange({ spread: '90', window: '2h' });
  t.equal(change.spreadSeconds, 90, 'policy set --spread 90 is 90 seconds');
  t.equal(policyChange({ spread: '0' }).spreadSeconds, 0);
  const config = parseConfig({
    retention: { gcGrace: '0' },
    monitoring: { heartbeatTimeout: '90', checkEvery: 90 },
    notifications: { repeatEvery: '1w' },
    http: { bodyIdleTimeout: '45' },
  });
  t.equal(config.retention.gcGraceSeconds, 0);
  t.equal(config.monitoring.heartbeatTimeoutSeconds, 90, 'a string of seconds');
  t.equal(config.monitoring.checkEverySeconds, 90, 'a JSON number of seconds');
  t.equal(config.notifications.repeatSeconds, 7 * 86_400);
  t.equal(config.http.bodyIdleTimeoutSeconds, 45);
  t.throws(() => parseConfig({ monitoring: { checkEvery: '5x' } }, 'server.json'), {
    message: /^server\.json: \/monitoring\/checkEvery: cannot read duration "5x"/,
  });
  t.throws(() => parseConfig({ http: { headersTimeout: 'soon' } }, 'server.json'), {
    message: /^server\.json: \/http\/headersTimeout: cannot read duration/,
  });
});
