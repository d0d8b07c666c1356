// Many things at once: two uploads of the same machine, garbage collection, prune and
// content verification looping while three clients upload, and connections that send
// headers and then idle or trickle while another machine images. Whatever interleaves,
// nothing committed is lost or wrong.
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import t, { type Test } from 'tap';
import { api } from '../helpers/api.js';
import { b365, type CliResult } from '../helpers/cli.js';
import { assertNothingLost, changeDisk, FaultRig, type FaultDisk, type Pending, succeeded, waitFor } from './helpers.js';

/** Both succeeded, or one was refused with a clear message (conflict, no stack trace). */
function bothOrOneRefused(t: Test, results: { exitCode: number; stderr: string }[]): void {
  t.ok(results.some((result) => result.exitCode === 0), 'at least one upload commits');
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

t.test('garbage collection, prune and content verification loop while three clients upload', async (t) => {
  const rig = await FaultRig.start(t);
  const machines = ['one', 'two', 'three'];
  const disks = await Promise.all(machines.map((machine) => rig.disk(machine, { dataMiB: 16 })));
  succeeded(t, await b365(['policy', 'set', 'default', '--keep-last', '2'], { env: rig.env }), 'retention: keep the last 2');
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
      if (verify.exitCode !== 0) problems.push(`verify exited ${verify.exitCode}: ${JSON.stringify(verify.json?.report?.summary ?? verify.stderr)}`);
    }
    return { problems, rounds };
  })();
  const uploads = machines.map(async (machine, position) => {
    for (let round = 0; round < 3; round++) {
      if (round > 0) await changeDisk(t, disks[position]!, 1);
      succeeded(t, await rig.image(disks[position]!, machine), `${machine}: image ${round + 1} commits during maintenance`);
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

/** A raw connection that sends a chunk upload's headers and a few bytes, then idles or trickles. */
function stalledUpload(url: string, token: string, session: string, trickle: boolean): net.Socket {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  const digest = randomUUID().replace(/-/g, '').repeat(2);
  socket.on('error', () => undefined);
  socket.on('connect', () => {
    socket.write(`PUT /api/v1/sessions/${session}/chunks/${digest} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n`);
    socket.write(Buffer.alloc(16, 1));
    if (trickle) {
      const timer = setInterval(() => socket.write(Buffer.alloc(1, 2)), 200);
      socket.on('close', () => clearInterval(timer));
    }
  });
  return socket;
}

/** The other machine's image, given up after a while so that a stall cannot hold the suite. */
async function imageGivingUpAfter(rig: FaultRig, disk: FaultDisk, milliseconds: number): Promise<CliResult> {
  const run = await rig.startImage(disk, 'bystander', { env: { B365_RETRY_FOR_MS: '20000' } });
  const timer = setTimeout(() => run.child.kill('SIGKILL'), milliseconds);
  try {
    return await run.done();
  } finally {
    clearTimeout(timer);
  }
}

t.test('stalled and slow clients of one machine while another machine images', async (t) => {
  const rig = await FaultRig.start(t);
  const disk = await rig.disk('bystander', { dataMiB: 16 });
  const token = (await b365(['token', 'create', '--role', 'machine', '--machine', 'staller', '--json'], { env: rig.env })).json.token as string;
  const session = randomUUID();
  const opened = await api(rig.server.url, 'POST', '/sessions', { token, json: { id: session, machine: 'staller' } });
  t.equal(opened.status, 200, 'the staller opens a session');
  const sockets = Array.from({ length: 10 }, (_, position) => stalledUpload(rig.server.url, token, session, position >= 8));
  t.teardown(() => sockets.forEach((socket) => socket.destroy()));

  // The connections must hold their upload slots before the other machine starts.
  await waitFor('the stalled connections to be open', () => sockets.every((socket) => socket.readyState === 'open' && socket.bytesWritten > 0));
  // Fair slots and body timeouts wait for a fix; until then these report as TODO.
  const pending: Pending = { todo: 'needs the fair upload slots and body timeouts fix' };
  const started = Date.now();
  const during = await imageGivingUpAfter(rig, disk, 30_000);
  const seconds = (Date.now() - started) / 1000;
  t.comment(`with 10 stalled uploads open, the other machine's image exited ${during.exitCode} after ${seconds.toFixed(1)} s`);
  succeeded(t, during, 'the other machine images normally meanwhile', pending);
  t.ok(seconds < 20, `in ${seconds.toFixed(1)} s`, pending);
  for (const socket of sockets) socket.destroy();
  if (during.exitCode !== 0) succeeded(t, await rig.image(disk, 'bystander'), 'once the stalled connections are gone, the image commits');
  await assertNothingLost(t, rig);
});
