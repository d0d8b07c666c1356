// Input the server must refuse before it writes anything: lifetimes out of range, machine
// names that are not names, restore codes for unknown machines, non-canonical LZ4 frames.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { digestOf } from '../../src/format/digest.js';
import { encodeFrame, frameHeader } from '../../src/format/lz4-frame.js';
import { api } from '../helpers/api.js';
import { Prng, mixedContent } from '../helpers/content.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const BAD_NAMES = ['../etc', '.', 'pc\u000001', 'x'.repeat(65), ''];
/** Names that survive in a URL path ('.' is a dot segment there, '' an empty one). */
const BAD_PATH_NAMES = ['../etc', 'pc\u000001', 'x'.repeat(65), '-dash'];

/** `lz4` reads a file, not stdin: only then does it know, and may write, the content size. */
async function lz4(file: string, options: string[]): Promise<Buffer> {
  const result = await execa('lz4', [...options, '-c', file], { encoding: 'buffer', stderr: 'ignore' });
  return Buffer.from(result.stdout);
}

t.test('input validation', async (t) => {
  const server = await startServer(t);
  const admin = server.adminToken;
  const machineToken = (
    await api(server.url, 'POST', '/tokens', {
      token: admin,
      json: { role: 'machine', machine: 'pc-01', label: 'pc-01 agent' },
    })
  ).body.token as string;

  t.test('token lifetimes are whole seconds in range, checked before anything is written', async (t) => {
    const before = (await api(server.url, 'GET', '/tokens', { token: admin })).body.tokens.length;
    for (const ttlSeconds of [1e308, -1, 0, 1.5, '3600', Number.MAX_SAFE_INTEGER]) {
      const answer = await api(server.url, 'POST', '/tokens', { token: admin, json: { role: 'auditor', ttlSeconds } });
      t.equal(answer.status, 400, `ttlSeconds ${JSON.stringify(ttlSeconds)} is refused with 400`);
      t.match(
        answer.body?.message,
        /body\.ttlSeconds must be a whole number of seconds from 1 to 315360000/,
        'naming the field and the range',
      );
    }
    const refusedMachine = await api(server.url, 'POST', '/tokens', {
      token: admin,
      json: { role: 'machine', machine: 'brand-new', ttlSeconds: 1e308 },
    });
    t.equal(refusedMachine.status, 400);
    t.equal(
      (await api(server.url, 'GET', '/tokens', { token: admin })).body.tokens.length,
      before,
      'no token was created by a refused request',
    );
    const machines = (await api(server.url, 'GET', '/machines', { token: admin })).body.machines.map(
      (machine: { name: string }) => machine.name,
    );
    t.notOk(machines.includes('brand-new'), 'nor a machine');
    const good = await api(server.url, 'POST', '/tokens', {
      token: admin,
      json: { role: 'auditor', ttlSeconds: 3600 },
    });
    t.equal(good.status, 201, 'an hour is fine');
  });

  t.test('restore code lifetimes are whole seconds up to 30 days', async (t) => {
    for (const ttlSeconds of [1e308, 0.5, 0, 31 * 86400, '60']) {
      const answer = await api(server.url, 'POST', '/restore-codes', {
        token: admin,
        json: { machine: 'pc-01', ttlSeconds },
      });
      t.equal(answer.status, 400, `ttlSeconds ${JSON.stringify(ttlSeconds)} is refused with 400`);
      t.match(answer.body?.message, /body\.ttlSeconds must be a whole number of seconds from 1 to 2592000/);
    }
    t.equal(
      (await api(server.url, 'GET', '/restore-codes', { token: admin })).body.codes.length,
      0,
      'no code was created',
    );
  });

  t.test('a restore code for a machine that does not exist is refused with 404', async (t) => {
    const ghost = await api(server.url, 'POST', '/restore-codes', { token: admin, json: { machine: 'ghost' } });
    t.equal(ghost.status, 404);
    t.match(ghost.body.message, /machine ghost does not exist/);
    const known = await api(server.url, 'POST', '/restore-codes', { token: admin, json: { machine: 'pc-01' } });
    t.equal(known.status, 201, 'a known machine gets its code');
    const capture = await api(server.url, 'POST', '/restore-codes', {
      token: admin,
      json: { machine: 'new-box', capture: true },
    });
    t.equal(capture.status, 201, 'a capture code may bring a new machine in');
  });

  t.test('machine names are checked wherever they enter', async (t) => {
    for (const name of BAD_NAMES) {
      const label = JSON.stringify(name).slice(0, 20);
      const session = await api(server.url, 'POST', '/sessions', {
        token: admin,
        json: { id: randomUUID(), machine: name },
      });
      t.equal(session.status, 400, `session for ${label} is refused`);
      t.match(
        session.body.message,
        /body\.machine: invalid machine name .*1-64 letters, digits, dot, dash or underscore/,
        'naming the field and the rule',
      );
      const token = await api(server.url, 'POST', '/tokens', {
        token: admin,
        json: { role: 'machine', machine: name },
      });
      t.equal(token.status, 400, `token for ${label} is refused`);
      t.match(token.body.message, /body\.machine: invalid machine name/);
      const code = await api(server.url, 'POST', '/restore-codes', {
        token: admin,
        json: { machine: name, capture: true },
      });
      t.equal(code.status, 400, `restore code for ${label} is refused`);
      t.match(code.body.message, /body\.machine: invalid machine name/);
      const listed = await api(server.url, 'GET', `/images?machine=${encodeURIComponent(name)}`, { token: admin });
      t.equal(listed.status, 400, `?machine=${label} is refused`);
    }
    const notString = await api(server.url, 'POST', '/sessions', {
      token: admin,
      json: { id: randomUUID(), machine: 42 },
    });
    t.equal(notString.status, 400);
    t.match(notString.body.message, /body\.machine: a machine name must be a string/);

    for (const name of BAD_PATH_NAMES) {
      const label = JSON.stringify(name).slice(0, 20);
      const segment = encodeURIComponent(name);
      const base = await api(server.url, 'GET', `/machines/${segment}/base`, { token: admin });
      t.equal(base.status, 400, `/machines/${label}/base is refused`);
      t.match(base.body.message, /machine in the path: invalid machine name/);
      const image = await api(server.url, 'GET', `/images/${segment}@latest`, { token: admin });
      t.equal(image.status, 400, `image ${label}@latest is refused`);
      t.match(image.body.message, /invalid machine name/);
      const policy = await api(server.url, 'PUT', `/policies/${segment}`, { token: admin, json: { enabled: false } });
      t.equal(policy.status, 400, `policy ${label} is refused`);
      t.match(policy.body.message, /policy name: invalid machine name/);
      const agent = await api(server.url, 'DELETE', `/agents/${segment}`, { token: admin });
      t.equal(agent.status, 400, `agent ${label} is refused`);
    }
    const machines = (await api(server.url, 'GET', '/machines', { token: admin })).body.machines.map(
      (machine: { name: string }) => machine.name,
    );
    t.same(machines.sort(), ['new-box', 'pc-01'], 'no bad name reached the catalog');
  });

  t.test('uploads must be canonical LZ4 frames', async (t) => {
    const session = randomUUID();
    t.equal(
      (await api(server.url, 'POST', '/sessions', { token: machineToken, json: { id: session, machine: 'pc-01' } }))
        .status,
      200,
    );
    const data = mixedContent(new Prng(7), 5 << 20);
    const digest = digestOf(data);
    const file = path.join(await tempDir(t), 'chunk.bin');
    await fs.writeFile(file, data);
    const put = (frame: Buffer) =>
      api(server.url, 'PUT', `/sessions/${session}/chunks/${digest}`, { token: machineToken, body: frame });

    // What `lz4` writes with options other than the canonical ones.
    const refused: [string, string[], RegExp][] = [
      [
        '64 KiB blocks (-B4)',
        ['--content-size', '--no-frame-crc', '-B4'],
        /not the canonical frame \(block maximum size 64 KiB; it must be 4 MiB/,
      ],
      ['256 KiB blocks (-B5)', ['--content-size', '--no-frame-crc', '-B5'], /block maximum size 256 KiB/],
      ['1 MiB blocks (-B6)', ['--content-size', '--no-frame-crc', '-B6'], /block maximum size 1024 KiB/],
      ['block checksums (-BX)', ['--content-size', '--no-frame-crc', '-BX'], /block checksums/],
      ['linked blocks (-BD)', ['--content-size', '--no-frame-crc', '-BD'], /linked blocks/],
      ['a content checksum', ['--content-size'], /content checksum/],
      ['no content size', ['--no-frame-crc'], /missing content size/],
    ];
    for (const [what, options, message] of refused) {
      const answer = await put(await lz4(file, options));
      t.equal(answer.status, 400, `a frame with ${what} is refused with 400`);
      t.match(answer.body?.message, message, 'naming the option');
    }

    // Canonical header, but the content cut into small blocks: same bytes, another frame.
    const small = Buffer.alloc(4);
    small.writeUInt32LE((100_000 | 0x80000000) >>> 0);
    const rest = Buffer.alloc(4);
    rest.writeUInt32LE(((data.length - 100_000) | 0x80000000) >>> 0);
    const split = Buffer.concat([
      frameHeader(data.length),
      small,
      data.subarray(0, 100_000),
      rest,
      data.subarray(100_000),
      Buffer.alloc(4),
    ]);
    const splitAnswer = await put(split);
    t.equal(splitAnswer.status, 400, 'a frame with a short block before the last is refused');
    t.match(splitAnswer.body?.message, /not the canonical frame \(short block at offset 15/);

    const fromCli = await put(await lz4(file, ['--content-size', '--no-frame-crc']));
    t.equal(fromCli.status, 201, '`lz4 --content-size --no-frame-crc` writes the canonical frame, which is accepted');
    t.equal((await put(encodeFrame(data))).status, 200, 'and is the same object as our own');
  });
});
