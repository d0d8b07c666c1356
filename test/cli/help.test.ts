// Every command's --help shows the options every command takes and the options of the
// form people type, even when those belong to a default subcommand.
import t from 'tap';
import { b365 } from '../helpers/cli.js';

const GLOBAL_OPTIONS = [
  '--server <url>',
  '--token <token>',
  '--token-file <file>',
  '--restore-code <code>',
  '--json',
  '--log-level <level>',
  '--log-format <format>',
];

async function help(args: string[]): Promise<string> {
  const result = await b365([...args, '--help'], { timeout: 30_000 });
  if (result.exitCode !== 0)
    throw new Error(`b365 ${args.join(' ')} --help exited ${result.exitCode}: ${result.stderr}`);
  return result.stdout;
}

t.test('subcommands list the global options', async (t) => {
  for (const args of [
    ['images'],
    ['restore-code', 'create'],
    ['token', 'list'],
    ['files', 'ls'],
    ['policy', 'set'],
    ['keys'],
  ]) {
    const text = await help(args);
    for (const option of GLOBAL_OPTIONS) t.ok(text.includes(option), `b365 ${args.join(' ')} --help shows ${option}`);
  }
});

t.test('b365 server --help shows how a server is started', async (t) => {
  const text = await help(['server']);
  t.match(text, /^Usage: b365 server \[--repo DIR\] \[--listen HOST:PORT\]/);
  for (const option of ['--repo <dir>', '--listen <host:port>', '--config <file>', '--log-file <file>'])
    t.ok(text.includes(option), option);
  t.match(text, /reindex/, 'and its other commands');
});

t.test('b365 verify --help shows --all and --level', async (t) => {
  const text = await help(['verify']);
  t.match(text, /^Usage: b365 verify \(IMAGE\.\.\. \| --all\) \[--level structural\|content\|restore-stream\]/);
  for (const option of ['--all', '--level <level>', '--local', '--out <file>']) t.ok(text.includes(option), option);
});

t.test('usage lines name required options', async (t) => {
  t.match(await help(['restore-code', 'create']), /^Usage: b365 restore-code create --machine NAME/);
  t.match(await help(['token', 'create']), /^Usage: b365 token create --role admin\|machine\|auditor/);
  t.match(await help(['restore']), /^Usage: b365 restore IMAGE --to TARGET/);
  t.match(await help(['image']), /^Usage: b365 image DISK\.\.\. --machine NAME/);
});
