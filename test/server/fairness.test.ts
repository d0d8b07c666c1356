// One machine's stalled uploads must not stall anyone else's: upload slots are shared
// fairly between machines, and a body that stops arriving is cut after the configured
// idle time (408) and gives its slot back, while a slow body that keeps coming is not.
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { digestOf } from '../../src/format/digest.js';
import { encodeFrame } from '../../src/format/lz4-frame.js';
import { api } from '../helpers/api.js';
import { b365 } from '../helpers/cli.js';
import { Prng, mixedContent, writeMixedFile } from '../helpers/content.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { serverConfigEnv } from '../helpers/server-config.js';
import { tempDir } from '../helpers/tmp.js';

interface Uploader {
  token: string;
  session: string;
}

async function uploader(server: TestServer, machine: string): Promise<Uploader> {
  const token = (
    await api(server.url, 'POST', '/tokens', { token: server.adminToken, json: { role: 'machine', machine } })
  ).body.token as string;
  const session = randomUUID();
  const opened = await api(server.url, 'POST', '/sessions', { token, json: { id: session, machine } });
  if (opened.status !== 200) throw new Error(`session: ${opened.status} ${JSON.stringify(opened.body)}`);
  return { token, session };
}

function chunk(seed: number): { digest: string; frame: Buffer } {
  const data = mixedContent(new Prng(seed), 256 << 10);
  return { digest: digestOf(data), frame: encodeFrame(data) };
}

interface Stall {
  socket: net.Socket;
  /** Everything the server answered, once the connection ends. */
  answer: Promise<{ text: string; closedAt: number }>;
}

/** A chunk upload that sends its headers and a few bytes of its body, then nothing. */
function stalledUpload(server: TestServer, who: Uploader, seed: number): Promise<Stall> {
  const { digest, frame } = chunk(seed);
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname, () => {
      socket.write(
        `PUT /api/v1/sessions/${who.session}/chunks/${digest} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${who.token}\r\n` +
          `Content-Type: application/octet-stream\r\nContent-Length: ${frame.length}\r\n\r\n`,
      );
      socket.write(frame.subarray(0, 16));
      const answer = new Promise<{ text: string; closedAt: number }>((done) => {
        let text = '';
        socket.on('data', (data) => (text += data.toString('latin1')));
        socket.on('close', () => done({ text, closedAt: Date.now() }));
      });
      resolve({ socket, answer });
    });
    socket.on('error', reject);
  });
}

/** PUT a chunk whose body arrives in `pieces` parts, `gapMs` apart. */
async function slowUpload(
  server: TestServer,
  who: Uploader,
  seed: number,
  pieces: number,
  gapMs: number,
): Promise<number> {
  const { digest, frame } = chunk(seed);
  const size = Math.ceil(frame.length / pieces);
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      for (let offset = 0; offset < frame.length; offset += size) {
        if (offset > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
        controller.enqueue(new Uint8Array(frame.subarray(offset, offset + size)));
      }
      controller.close();
    },
  });
  const response = await fetch(`${server.url}/api/v1/sessions/${who.session}/chunks/${digest}`, {
    method: 'PUT',
    headers: {
      authorization: `Bearer ${who.token}`,
      'content-type': 'application/octet-stream',
      'content-length': String(frame.length),
    },
    body,
    duplex: 'half',
    signal: AbortSignal.timeout(30_000),
  } as RequestInit);
  await response.arrayBuffer();
  return response.status;
}

t.test("one machine stalling 10 uploads does not stall another machine's image", async (t) => {
  // The idle limit is far beyond the test's length: only fair slots can let the image through.
  const server = await startServer(t, { env: await serverConfigEnv(t, { http: { bodyIdleTimeout: '300s' } }) });
  const directory = await tempDir(t);
  const source = path.join(directory, 'disk.img');
  await writeMixedFile(source, 24 << 20, 11);

  const evil = await uploader(server, 'stalling');
  const stalls = await Promise.all(Array.from({ length: 10 }, (_, index) => stalledUpload(server, evil, 100 + index)));
  t.teardown(() => {
    for (const stall of stalls) stall.socket.destroy();
  });
  let closed = 0;
  for (const stall of stalls) void stall.answer.then(() => closed++);
  await new Promise((resolve) => setTimeout(resolve, 500));

  const honest = (
    await api(server.url, 'POST', '/tokens', { token: server.adminToken, json: { role: 'machine', machine: 'honest' } })
  ).body.token as string;
  const started = Date.now();
  const imaged = await b365(['image', source, '--machine', 'honest', '--json'], {
    env: { ...server.env, B365_TOKEN: honest },
    timeout: 60_000,
  });
  t.equal(imaged.exitCode, 0, `the other machine's image completes (${imaged.stderr.slice(-400)})`);
  t.ok(Date.now() - started < 60_000, `within a bounded time (${Date.now() - started} ms)`);
  t.equal(closed, 0, 'while all 10 stalled uploads are still open');

  const restored = path.join(directory, 'restored.img');
  const restore = await b365(['restore', 'honest@latest', '--to', restored], { env: server.env, timeout: 60_000 });
  t.equal(restore.exitCode, 0, 'and the image restores');
});

t.test('a body that stops arriving is cut after the idle time and its slot is freed', async (t) => {
  const server = await startServer(t, {
    env: await serverConfigEnv(t, { http: { bodyIdleTimeout: '2s', keepAliveTimeout: '1s', uploadSlots: 1 } }),
  });
  const evil = await uploader(server, 'stalling');
  const other = await uploader(server, 'other');

  const startedAt = Date.now();
  const stall = await stalledUpload(server, evil, 1);
  await new Promise((resolve) => setTimeout(resolve, 200));
  // The only slot is held by the stalled body; this upload waits for it.
  const waiting = slowUpload(server, other, 2, 1, 0);
  const cut = await Promise.race([
    stall.answer,
    new Promise<null>((resolve) => setTimeout(() => resolve(null), 15_000)),
  ]);
  t.ok(cut, 'the stalled upload is ended by the server');
  if (!cut) return;
  t.match(cut.text, /^HTTP\/1\.1 408 /, 'with 408');
  t.match(cut.text, /request_timeout/, 'and a code naming the reason');
  const elapsed = cut.closedAt - startedAt;
  t.ok(elapsed >= 1800 && elapsed < 10_000, `after about the idle time (${elapsed} ms)`);
  t.equal(await waiting, 201, 'the upload waiting for the slot gets it and completes');

  // 5 pieces 1 s apart: 4 s in all, never 2 s without progress.
  t.equal(await slowUpload(server, other, 3, 5, 1000), 201, 'a slow body that keeps arriving is not cut');

  // Watching bodies must leave Node's keep-alive limit alone.
  const url = new URL(server.url);
  const idle = net.connect(Number(url.port), url.hostname);
  const closed = new Promise<number>((resolve) => idle.on('close', () => resolve(Date.now())));
  idle.on('error', () => {});
  idle.resume();
  idle.write(
    `POST /api/v1/restore-codes/exchange HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{"code":"A-B"}`,
  );
  const answered = Date.now();
  const closedAt = await Promise.race([closed, new Promise<null>((resolve) => setTimeout(() => resolve(null), 8000))]);
  t.ok(
    closedAt !== null && closedAt - answered < 5000,
    `an idle keep-alive connection is closed after keepAliveTimeout (${closedAt === null ? 'still open' : closedAt - answered} ms)`,
  );
  idle.destroy();
});
