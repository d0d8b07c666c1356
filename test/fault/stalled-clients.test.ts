// Connections of one machine token that send a chunk upload's headers and a few bytes,
// then idle (8) or trickle a byte at a time (2), while another machine images. With fair
// upload slots and body timeouts the other machine is not held up.
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import t from 'tap';
import { api } from '../helpers/api.js';
import { b365, type CliResult } from '../helpers/cli.js';
import { assertNothingLost, FaultRig, type FaultDisk, succeeded, waitFor } from './helpers.js';

/** A raw connection that sends a chunk upload's headers and a few bytes, then idles or trickles. */
function stalledUpload(url: string, token: string, session: string, trickle: boolean): net.Socket {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  const digest = randomUUID().replace(/-/g, '').repeat(2);
  socket.on('error', () => undefined);
  socket.on('connect', () => {
    socket.write(
      `PUT /api/v1/sessions/${session}/chunks/${digest} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n`,
    );
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
  const token = (
    await b365(['token', 'create', '--role', 'machine', '--machine', 'staller', '--json'], { env: rig.env })
  ).json.token as string;
  const session = randomUUID();
  const opened = await api(rig.server.url, 'POST', '/sessions', { token, json: { id: session, machine: 'staller' } });
  t.equal(opened.status, 200, 'the staller opens a session');
  const sockets = Array.from({ length: 10 }, (_, position) =>
    stalledUpload(rig.server.url, token, session, position >= 8),
  );
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
  });

  // The connections must hold their upload slots before the other machine starts.
  await waitFor('the stalled connections to be open', () =>
    sockets.every((socket) => socket.readyState === 'open' && socket.bytesWritten > 0),
  );
  const started = Date.now();
  const during = await imageGivingUpAfter(rig, disk, 30_000);
  const seconds = (Date.now() - started) / 1000;
  t.comment(
    `with 10 stalled uploads open, the other machine's image exited ${during.exitCode} after ${seconds.toFixed(1)} s`,
  );
  succeeded(t, during, 'the other machine images normally meanwhile');
  t.ok(seconds < 20, `in ${seconds.toFixed(1)} s`);
  for (const socket of sockets) socket.destroy();
  if (during.exitCode !== 0)
    succeeded(t, await rig.image(disk, 'bystander'), 'once the stalled connections are gone, the image commits');
  await assertNothingLost(t, rig);
});
