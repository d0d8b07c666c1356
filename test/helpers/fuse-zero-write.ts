// A one-file FUSE filesystem, spoken directly over /dev/fuse, whose file takes no bytes:
// every write is answered "0 bytes written" (with direct I/O, so the kernel passes that
// on to pwrite). Run as a program: `node fuse-zero-write.js MOUNTPOINT`; it prints
// "mounted" once the file MOUNTPOINT/disk.img can be opened, and ends at unmount.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

export const FUSE_FILE = 'disk.img';
export const FUSE_FILE_SIZE = 64 << 20;

const op = { lookup: 1, forget: 2, getattr: 3, open: 14, write: 16, release: 18, flush: 25, init: 26 } as const;
const BATCH_FORGET = 42;
const INTERRUPT = 36;
const FOPEN_DIRECT_IO = 1;
const ENOENT = 2;
const ENOSYS = 38;
const ROOT = 1n;
const FILE = 2n;

interface Request {
  opcode: number;
  unique: bigint;
  nodeid: bigint;
  body: Buffer;
}

function parse(buffer: Buffer, length: number): Request {
  return {
    opcode: buffer.readUInt32LE(4),
    unique: buffer.readBigUInt64LE(8),
    nodeid: buffer.readBigUInt64LE(16),
    body: Buffer.from(buffer.subarray(40, length)),
  };
}

function reply(fd: number, unique: bigint, error: number, body: Buffer = Buffer.alloc(0)): void {
  const header = Buffer.alloc(16);
  header.writeUInt32LE(16 + body.length, 0);
  header.writeInt32LE(-error, 4);
  header.writeBigUInt64LE(unique, 8);
  fs.writeSync(fd, Buffer.concat([header, body]));
}

/** struct fuse_attr (88 bytes): the root directory or the file. */
function attr(nodeid: bigint): Buffer {
  const bytes = Buffer.alloc(88);
  bytes.writeBigUInt64LE(nodeid, 0);
  if (nodeid === FILE) bytes.writeBigUInt64LE(BigInt(FUSE_FILE_SIZE), 8);
  bytes.writeUInt32LE(nodeid === ROOT ? 0o40755 : 0o100644, 60);
  bytes.writeUInt32LE(1, 64);
  bytes.writeUInt32LE(4096, 80);
  return bytes;
}

function initOut(): Buffer {
  const bytes = Buffer.alloc(64);
  bytes.writeUInt32LE(7, 0);
  bytes.writeUInt32LE(31, 4);
  bytes.writeUInt32LE(1 << 17, 8);
  bytes.writeUInt32LE(1 << 20, 20);
  return bytes;
}

interface Answer {
  error: number;
  body?: Buffer;
}

/** What to answer a request; null for those the kernel expects no answer to. */
function answer(request: Request): Answer | null {
  const { opcode, nodeid } = request;
  if (opcode === op.forget || opcode === BATCH_FORGET || opcode === INTERRUPT) return null;
  if (opcode === op.init) return { error: 0, body: initOut() };
  if (opcode === op.getattr) return { error: 0, body: Buffer.concat([Buffer.alloc(16), attr(nodeid)]) };
  if (opcode === op.lookup) {
    const name = request.body.toString('utf8').replace(/\0.*$/s, '');
    if (nodeid !== ROOT || name !== FUSE_FILE) return { error: ENOENT };
    const entry = Buffer.alloc(40);
    entry.writeBigUInt64LE(FILE, 0);
    return { error: 0, body: Buffer.concat([entry, attr(FILE)]) };
  }
  if (opcode === op.open) {
    const open = Buffer.alloc(16);
    open.writeUInt32LE(FOPEN_DIRECT_IO, 8);
    return { error: 0, body: open };
  }
  // The point of this filesystem: a write that takes nothing, without an error.
  if (opcode === op.write) return { error: 0, body: Buffer.alloc(8) };
  if (opcode === op.flush || opcode === op.release) return { error: 0 };
  return { error: ENOSYS };
}

function serve(mountPoint: string): void {
  const fd = fs.openSync('/dev/fuse', 'r+');
  // -i: no mount.fuse helper; the kernel gets our /dev/fuse descriptor as fd 3 of mount.
  const mounted = spawnSync(
    'mount',
    ['-i', '-t', 'fuse', '-o', 'fd=3,rootmode=40000,user_id=0,group_id=0', 'b365-zero-write', mountPoint],
    { stdio: ['ignore', 'inherit', 'inherit', fd] },
  );
  if (mounted.status !== 0) process.exit(1);
  const buffer = Buffer.alloc((1 << 20) + 4096);
  let announced = false;
  for (;;) {
    let length: number;
    try {
      length = fs.readSync(fd, buffer);
    } catch (error) {
      // ENODEV: unmounted. EINTR/ENOENT: a request interrupted before it was read.
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EINTR' || code === 'EAGAIN') continue;
      process.exit(code === 'ENODEV' ? 0 : 1);
    }
    const request = parse(buffer, length);
    const response = answer(request);
    if (response) reply(fd, request.unique, response.error, response.body);
    if (request.opcode === op.init && !announced) {
      announced = true;
      process.stdout.write('mounted\n');
    }
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) serve(process.argv[2]!);
