// A read-only NBD server (the network block device protocol: fixed newstyle
// negotiation, NBD_OPT_GO/INFO/EXPORT_NAME/LIST, NBD_CMD_READ/DISC), so standard tools
// (qemu-img, qemu-nbd, nbd-client) can read or mount a volume straight from an image.
import net from 'node:net';
import type { BlockReader } from '../block-reader.js';

const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const REPLY_MAGIC = 0x3e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;

const FLAG_FIXED_NEWSTYLE = 1 << 0;
const FLAG_NO_ZEROES = 1 << 1;
const CLIENT_FLAG_NO_ZEROES = 1 << 1;

const OPT_EXPORT_NAME = 1;
const OPT_ABORT = 2;
const OPT_LIST = 3;
const OPT_INFO = 6;
const OPT_GO = 7;

const REP_ACK = 1;
const REP_SERVER = 2;
const REP_INFO = 3;
const REP_ERR_UNSUP = 0x80000001;
const REP_ERR_INVALID = 0x80000003;
const REP_ERR_UNKNOWN = 0x80000006;

const INFO_EXPORT = 0;
const INFO_NAME = 1;
const INFO_BLOCK_SIZE = 3;

const TRANSMISSION_FLAGS = (1 << 0) | (1 << 1) | (1 << 8); // HAS_FLAGS | READ_ONLY | CAN_MULTI_CONN

const CMD_READ = 0;
const CMD_WRITE = 1;
const CMD_DISC = 2;
const CMD_FLUSH = 3;
const CMD_CACHE = 5;

const EPERM = 1;
const EIO = 5;
const EINVAL = 22;
const ENOTSUP = 95;

const MAX_REQUEST = 32 << 20;

export interface NbdExport {
  name: string;
  reader: BlockReader;
}

export interface NbdEvents {
  onError?(error: Error): void;
  onRead?(offset: number, length: number): void;
}

/** Buffers socket data so the protocol can ask for exactly n bytes. */
class SocketReader {
  private buffered: Buffer[] = [];
  private length = 0;
  private waiting: { size: number; resolve(bytes: Buffer): void; reject(error: Error): void } | null = null;
  private ended = false;

  constructor(socket: net.Socket) {
    socket.on('data', (data: Buffer) => {
      this.buffered.push(data);
      this.length += data.length;
      this.pump();
    });
    socket.on('close', () => {
      this.ended = true;
      this.pump();
    });
  }

  read(size: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiting = { size, resolve, reject };
      this.pump();
    });
  }

  private pump(): void {
    if (!this.waiting) return;
    if (this.length >= this.waiting.size) {
      const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
      const { size, resolve } = this.waiting;
      this.waiting = null;
      this.buffered = all.length > size ? [all.subarray(size)] : [];
      this.length = all.length - size;
      resolve(all.subarray(0, size));
    } else if (this.ended) {
      const { reject } = this.waiting;
      this.waiting = null;
      reject(new Error('connection closed'));
    }
  }
}

function optionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(20);
  header.writeBigUInt64BE(REPLY_MAGIC, 0);
  header.writeUInt32BE(option, 8);
  header.writeUInt32BE(type, 12);
  header.writeUInt32BE(data.length, 16);
  return Buffer.concat([header, data]);
}

function exportInfo(size: number): Buffer {
  const info = Buffer.alloc(12);
  info.writeUInt16BE(INFO_EXPORT, 0);
  info.writeBigUInt64BE(BigInt(size), 2);
  info.writeUInt16BE(TRANSMISSION_FLAGS, 10);
  return info;
}

function blockSizeInfo(): Buffer {
  const info = Buffer.alloc(14);
  info.writeUInt16BE(INFO_BLOCK_SIZE, 0);
  info.writeUInt32BE(1, 2);
  info.writeUInt32BE(4096, 6);
  info.writeUInt32BE(MAX_REQUEST, 10);
  return info;
}

async function negotiate(socket: net.Socket, input: SocketReader, exports: NbdExport[]): Promise<NbdExport | null> {
  const greeting = Buffer.alloc(18);
  greeting.writeBigUInt64BE(NBDMAGIC, 0);
  greeting.writeBigUInt64BE(IHAVEOPT, 8);
  greeting.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16);
  socket.write(greeting);
  const clientFlags = (await input.read(4)).readUInt32BE(0);
  const noZeroes = (clientFlags & CLIENT_FLAG_NO_ZEROES) !== 0;
  const find = (name: string) =>
    exports.find((candidate) => candidate.name === name) ??
    (name === '' || exports.length === 1 ? exports[0] : undefined);
  for (;;) {
    const header = await input.read(16);
    if (header.readBigUInt64BE(0) !== IHAVEOPT) throw new Error('bad option magic');
    const option = header.readUInt32BE(8);
    const length = header.readUInt32BE(12);
    if (length > 1 << 16) throw new Error('option too long');
    const data = length ? await input.read(length) : Buffer.alloc(0);
    switch (option) {
      case OPT_EXPORT_NAME: {
        const chosen = find(data.toString('utf8'));
        if (!chosen) {
          socket.end();
          return null;
        }
        const reply = Buffer.alloc(noZeroes ? 10 : 134);
        reply.writeBigUInt64BE(BigInt(chosen.reader.size), 0);
        reply.writeUInt16BE(TRANSMISSION_FLAGS, 8);
        socket.write(reply);
        return chosen;
      }
      case OPT_ABORT:
        socket.end(optionReply(option, REP_ACK));
        return null;
      case OPT_LIST: {
        for (const entry of exports) {
          const name = Buffer.from(entry.name, 'utf8');
          const body = Buffer.alloc(4 + name.length);
          body.writeUInt32BE(name.length, 0);
          name.copy(body, 4);
          socket.write(optionReply(option, REP_SERVER, body));
        }
        socket.write(optionReply(option, REP_ACK));
        break;
      }
      case OPT_INFO:
      case OPT_GO: {
        if (data.length < 6) {
          socket.write(optionReply(option, REP_ERR_INVALID));
          break;
        }
        const nameLength = data.readUInt32BE(0);
        const chosen = nameLength + 6 <= data.length ? find(data.toString('utf8', 4, 4 + nameLength)) : undefined;
        if (!chosen) {
          socket.write(optionReply(option, REP_ERR_UNKNOWN));
          break;
        }
        socket.write(optionReply(option, REP_INFO, exportInfo(chosen.reader.size)));
        const name = Buffer.from(chosen.name, 'utf8');
        const nameInfo = Buffer.alloc(2 + name.length);
        nameInfo.writeUInt16BE(INFO_NAME, 0);
        name.copy(nameInfo, 2);
        socket.write(optionReply(option, REP_INFO, nameInfo));
        socket.write(optionReply(option, REP_INFO, blockSizeInfo()));
        socket.write(optionReply(option, REP_ACK));
        if (option === OPT_GO) return chosen;
        break;
      }
      default:
        socket.write(optionReply(option, REP_ERR_UNSUP));
    }
  }
}

function simpleReply(handle: Buffer, error: number, data?: Buffer): Buffer[] {
  const header = Buffer.alloc(16);
  header.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  header.writeUInt32BE(error, 4);
  handle.copy(header, 8);
  return data ? [header, data] : [header];
}

async function transmit(socket: net.Socket, input: SocketReader, chosen: NbdExport, events: NbdEvents): Promise<void> {
  const pending = new Set<Promise<void>>();
  const send = (parts: Buffer[]) => {
    if (!socket.destroyed) socket.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  };
  for (;;) {
    const request = await input.read(28);
    if (request.readUInt32BE(0) !== REQUEST_MAGIC) throw new Error('bad request magic');
    const type = request.readUInt16BE(6);
    const handle = Buffer.from(request.subarray(8, 16));
    const offset = Number(request.readBigUInt64BE(16));
    const length = request.readUInt32BE(24);
    if (type === CMD_DISC) break;
    if (type === CMD_WRITE) {
      if (length <= MAX_REQUEST) await input.read(length);
      send(simpleReply(handle, EPERM));
      continue;
    }
    if (type === CMD_FLUSH || type === CMD_CACHE) {
      send(simpleReply(handle, 0));
      continue;
    }
    if (type !== CMD_READ) {
      send(simpleReply(handle, type <= 7 ? EPERM : ENOTSUP));
      continue;
    }
    if (length > MAX_REQUEST || offset + length > chosen.reader.size) {
      send(simpleReply(handle, EINVAL));
      continue;
    }
    while (pending.size >= 8) await Promise.race(pending);
    const work = chosen.reader.read(offset, length).then(
      (bytes) => {
        events.onRead?.(offset, length);
        send(simpleReply(handle, 0, bytes));
      },
      (error: Error) => {
        events.onError?.(error);
        send(simpleReply(handle, EIO));
      },
    );
    pending.add(work);
    void work.finally(() => pending.delete(work));
  }
  await Promise.all(pending);
  socket.end();
}

export function createNbdServer(exports: NbdExport[], events: NbdEvents = {}): net.Server {
  return net.createServer((socket) => {
    socket.setNoDelay(true);
    const input = new SocketReader(socket);
    socket.on('error', () => undefined);
    void (async () => {
      const chosen = await negotiate(socket, input, exports);
      if (chosen) await transmit(socket, input, chosen, events);
    })().catch((error: Error) => {
      if (error.message !== 'connection closed') events.onError?.(error);
      socket.destroy();
    });
  });
}
