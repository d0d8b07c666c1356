// The interactive rescue session driven through its console input, as a technician
// would answer: a refused confirmation writes nothing; the right disk name restores
// and the checks are shown.
import path from 'node:path';
import t from 'tap';
import { b3sum } from '../helpers/b3sum.js';
import { b365 } from '../helpers/cli.js';
import { writeLargeDistinctFile } from '../helpers/content.js';
import { attachLoop, MiB } from '../helpers/disk.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

t.test('restore through the questions, after one refused confirmation', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const source = path.join(directory, 'source.img');
  await writeLargeDistinctFile(source, 8 * MiB, 21);
  const imaged = await b365(['image', source, '--machine', 'desk7', '--json'], { env: server.env });
  t.equal(imaged.exitCode, 0, imaged.stderr);
  const code = (await b365(['restore-code', 'create', '--machine', 'desk7', '--json'], { env: server.env })).json
    .code as string;

  const targetFile = path.join(directory, 'target.img');
  await writeLargeDistinctFile(targetFile, 16 * MiB, 4);
  const target = await attachLoop(t, targetFile);
  const name = path.basename(target.device);
  const before = await b3sum(target.device);

  const answers = [
    'restore',
    server.url,
    'not-a-code',
    '',
    code,
    '9',
    '1',
    name,
    'yes',
    'restore',
    server.url,
    code,
    '',
    name,
    name,
    'shell',
  ];
  const run = await b365(['rescue', '--no-network', '--loop-devices'], {
    input: `${answers.join('\n')}\n`,
    env: { B365_STATE_DIR: server.env.B365_STATE_DIR },
  });
  t.equal(run.exitCode, 0, run.stderr + run.stdout);
  const output = run.stdout;
  t.match(output, /Backup365 rescue \d+\.\d+\.\d+/);
  t.match(output, /unknown restore code/, 'a wrong code is explained and asked again');
  t.match(output, /restore code accepted: machine desk7/);
  t.match(output, new RegExp(`${imaged.json.image}`), 'the image is listed');
  t.match(output, /verification ok/);
  t.match(output, /answer a number from 1 to 1/, 'an answer out of range is asked again');
  t.match(output, new RegExp(`EVERYTHING on ${target.device}`), 'the confirmation names the disk');
  t.match(output, /stopped; nothing was written/);
  t.match(output, /ok {4} content digest of disk/, 'the restore checks are shown');
  t.match(output, /The restore verified/);
  t.not(await b3sum(target.device), before, 'the target was written after the right name was typed');
  const prefix = await attachLoop(t, targetFile, { size: 8 * MiB });
  t.equal(await b3sum(prefix.device), await b3sum(source), 'and holds the image (b3sum)');
});

t.test('input that ends mid-question stops cleanly', async (t) => {
  const run = await b365(['rescue', '--no-network'], { input: 'restore\n' });
  t.equal(run.exitCode, 130, run.stderr);
  t.match(run.stderr, /console input ended/);
});
