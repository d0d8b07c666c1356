// `b365 policy set|show|list|delete`: when machines are imaged and how long their
// images are kept. NAME is `default` or a machine name.
import type { Command } from 'commander';
import type { RepositoryClient } from '../../client/repository.js';
import { UsageError } from '../../core/errors.js';
import { parseChunkSize } from '../../format/chunk.js';
import { LIVE_MODES, type LiveMode, type Policy, type PolicyOverrides, RETENTION_KEYS } from '../../format/policy.js';
import { clientFor, globals } from '../context.js';
import { parseDurationSeconds } from '../../core/duration.js';
import { printJson, printTable } from '../output.js';
import { formatWhen, serverTimeFormat, type TimeFormat } from '../time-format.js';

interface PolicyView {
  name: string;
  overrides: PolicyOverrides;
  effective: Policy;
  updatedAt: string | null;
}

interface SetFlags {
  schedule?: string;
  timezone?: string;
  disks?: string;
  live?: string;
  raw?: boolean;
  chunkSize?: string;
  spread?: string;
  window?: string;
  enable?: boolean;
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  inherit?: string[];
}

const FIELD_NAMES = [
  'schedule',
  'timezone',
  'enabled',
  'disks',
  'live',
  'raw',
  'chunkSize',
  'spreadSeconds',
  'windowSeconds',
  ...RETENTION_KEYS,
];

function count(text: string, option: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${option} needs a whole number, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** The JSON change a `policy set` command line asks for. */
export function policyChange(flags: SetFlags): Record<string, unknown> {
  const change: Record<string, unknown> = {};
  const retention: Record<string, unknown> = {};
  if (flags.schedule !== undefined) change.schedule = flags.schedule;
  if (flags.timezone !== undefined) change.timezone = flags.timezone;
  if (flags.disks !== undefined)
    change.disks = flags.disks
      .split(',')
      .map((disk) => disk.trim())
      .filter(Boolean);
  if (flags.live !== undefined) {
    if (!LIVE_MODES.includes(flags.live as LiveMode))
      throw new UsageError(`--live must be one of ${LIVE_MODES.join(', ')}`);
    change.live = flags.live;
  }
  if (flags.raw !== undefined) change.raw = flags.raw;
  if (flags.chunkSize !== undefined)
    change.chunkSize = flags.chunkSize === 'auto' ? 'auto' : parseChunkSize(flags.chunkSize);
  if (flags.spread !== undefined) change.spreadSeconds = parseDurationSeconds(flags.spread, '--spread');
  if (flags.window !== undefined) change.windowSeconds = parseDurationSeconds(flags.window, '--window');
  if (flags.enable !== undefined) change.enabled = flags.enable;
  const keeps: [keyof SetFlags, string, string][] = [
    ['keepLast', 'keepLast', '--keep-last'],
    ['keepHourly', 'keepHourly', '--keep-hourly'],
    ['keepDaily', 'keepDaily', '--keep-daily'],
    ['keepWeekly', 'keepWeekly', '--keep-weekly'],
    ['keepMonthly', 'keepMonthly', '--keep-monthly'],
    ['keepYearly', 'keepYearly', '--keep-yearly'],
  ];
  for (const [flag, key, option] of keeps)
    if (flags[flag] !== undefined) retention[key] = count(String(flags[flag]), option);
  for (const name of flags.inherit ?? []) {
    if (!FIELD_NAMES.includes(name)) throw new UsageError(`--inherit takes one of ${FIELD_NAMES.join(', ')}`);
    if ((RETENTION_KEYS as string[]).includes(name)) retention[name] = null;
    else change[name] = null;
  }
  if (Object.keys(retention).length) change.retention = retention;
  if (Object.keys(change).length === 0)
    throw new UsageError('nothing to change: give --schedule, --disks, --keep-daily, ... (see b365 policy set --help)');
  return change;
}

function describe(view: PolicyView, times: TimeFormat): string {
  const policy = view.effective;
  const own = (key: string) =>
    key in view.overrides || (view.overrides.retention && key in view.overrides.retention) ? '' : '  (inherited)';
  const keeps = RETENTION_KEYS.filter((key) => policy.retention[key] > 0).map(
    (key) => `${key.replace(/^keep/, '').toLowerCase()} ${policy.retention[key]}`,
  );
  return [
    `policy ${view.name}${view.updatedAt ? `, changed ${formatWhen(view.updatedAt, times)}` : ''}`,
    `  schedule   ${policy.schedule} ${policy.timezone}${policy.enabled ? '' : ' (disabled)'}${own('schedule')}`,
    `  disks      ${policy.disks.length ? policy.disks.join(', ') : 'every fixed disk'}${own('disks')}`,
    `  live       ${policy.live}${policy.raw ? ', raw' : ''}, chunks of ${policy.chunkSize === 'auto' ? 'a size chosen per volume' : `${policy.chunkSize / 1024} KiB`}`,
    `  spread     ${policy.spreadSeconds} s, window ${Math.round(policy.windowSeconds / 60)} min`,
    `  keep       ${keeps.length ? keeps.join(', ') : 'everything (no retention)'}`,
  ].join('\n');
}

/**
 * A policy may be set before its machine exists (it applies from the first report), but a
 * name the server has never heard of is more often a typo: say so on stderr, still exit 0.
 */
async function warnIfUnknownMachine(client: RepositoryClient, name: string): Promise<void> {
  if (name === 'default') return;
  const machines = await client.listMachines();
  if (machines.some((machine) => machine.name === name)) return;
  process.stderr.write(`warning: no machine named ${name} has reported yet; the policy applies when it does\n`);
  const close = machines.map((machine) => machine.name).filter((known) => editDistance(known, name) <= 2);
  if (close.length) process.stderr.write(`  known machines with a similar name: ${close.join(', ')}\n`);
}

/** Levenshtein distance, to suggest the machine a mistyped name probably meant. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++)
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

export function registerPolicy(program: Command): void {
  const policy = program
    .command('policy')
    .description('backup policies: schedule, disks, retention (NAME is default or a machine)');

  addSetOptions(
    policy
      .command('set')
      .description('change some fields of a policy; the rest stays or is inherited from the default')
      .argument('<name>', 'default, or a machine name'),
  ).action(setPolicy);

  policy
    .command('show')
    .description('a policy as it applies (inherited fields included)')
    .argument('[name]', 'default, or a machine name', 'default')
    .action(showPolicy);

  policy.command('list').description('the default policy and every machine policy').action(listPolicies);

  policy
    .command('delete')
    .description("forget a machine's own policy (it follows the default again); `default` resets the default")
    .argument('<name>')
    .action(deletePolicy);
}

/** The flags of `policy set`, one per field a policy has. */
function addSetOptions(command: Command): Command {
  return command
    .option('--schedule <cron>', 'cron expression, e.g. "0 2 * * *" (02:00 every day)')
    .option('--timezone <zone>', 'IANA time zone the schedule and retention days are read in')
    .option('--disks <list>', 'comma-separated block devices or disk image files ("" for every fixed disk)')
    .option('--live <mode>', `mounted read-write filesystems: ${LIVE_MODES.join(', ')}`)
    .option('--raw', 'capture whole disks byte for byte')
    .option('--no-raw', 'capture by filesystem (the default)')
    .option('--chunk-size <size>', 'chunk size, 256K to 8M, or auto (the default: chosen per volume)')
    .option('--spread <duration>', 'start each run up to this long after its time (e.g. 10m)')
    .option('--window <duration>', 'a run not started this long after its time is missed (e.g. 4h)')
    .option('--enable', 'run the schedule')
    .option('--disable', 'stop the schedule (no runs, no missed-run incidents)')
    .option('--keep-last <n>', 'keep the newest N images')
    .option('--keep-hourly <n>', 'keep the newest image of each of the last N hours with images')
    .option('--keep-daily <n>', 'keep the newest image of each of the last N days with images')
    .option('--keep-weekly <n>', 'keep the newest image of each of the last N ISO weeks with images')
    .option('--keep-monthly <n>', 'keep the newest image of each of the last N months with images')
    .option('--keep-yearly <n>', 'keep the newest image of each of the last N years with images')
    .option('--inherit <field...>', "forget this policy's own value of these fields (schedule, keepDaily, ...)");
}

async function setPolicy(name: string, flags: SetFlags & { disable?: boolean }, command: Command): Promise<void> {
  if (flags.disable) flags.enable = false;
  const change = policyChange(flags);
  await withClient(command, async (client) => {
    const view = await client.http.call<PolicyView>('PUT', policyPath(name), { json: change });
    await warnIfUnknownMachine(client, name);
    await printView(client, command, view);
  });
}

async function showPolicy(name: string, _flags: unknown, command: Command): Promise<void> {
  await withClient(command, async (client) =>
    printView(client, command, await client.http.call<PolicyView>('GET', policyPath(name))),
  );
}

async function deletePolicy(name: string, _flags: unknown, command: Command): Promise<void> {
  await withClient(command, async (client) =>
    printView(client, command, await client.http.call<PolicyView>('DELETE', policyPath(name))),
  );
}

async function listPolicies(_flags: unknown, command: Command): Promise<void> {
  await withClient(command, async (client) => {
    const { policies } = await client.http.call<{ policies: PolicyView[] }>('GET', '/policies');
    if (globals(command).json) printJson(policies);
    else printTable(policies.map(policyRow), ['name', 'schedule', 'disks', 'keep']);
  });
}

const policyPath = (name: string) => `/policies/${encodeURIComponent(name)}`;

async function withClient(command: Command, work: (client: RepositoryClient) => Promise<void>): Promise<void> {
  const client = await clientFor(command);
  try {
    await work(client);
  } finally {
    await client.close();
  }
}

async function printView(client: RepositoryClient, command: Command, view: PolicyView): Promise<void> {
  if (globals(command).json) printJson(view);
  else process.stdout.write(`${describe(view, await serverTimeFormat(client))}\n`);
}

/** One line of `policy list`: retention as d7 w4 m12 (the first letter of each keep). */
function policyRow(view: PolicyView): Record<string, string> {
  const { effective } = view;
  return {
    name: view.name,
    schedule: `${effective.schedule} ${effective.timezone}${effective.enabled ? '' : ' (off)'}`,
    disks: effective.disks.join(',') || 'all fixed',
    keep:
      RETENTION_KEYS.filter((key) => effective.retention[key] > 0)
        .map((key) => `${key.slice(4, 5).toLowerCase()}${effective.retention[key]}`)
        .join(' ') || 'all',
  };
}
