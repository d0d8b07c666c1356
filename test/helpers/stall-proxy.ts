// A TCP proxy on 127.0.0.1 in front of a real server that forwards faithfully until it
// has carried a given number of bytes, then stalls: connections stay open and nothing
// more passes either way, as with a hung server or a dead network path.
import net from 'node:net';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface StallProxy {
  url: string;
  /** Resolves when the proxy starts stalling. */
  stalled: Promise<void>;
  /** Forward again, for connections made from now on. */
  resume(): void;
  close(): Promise<void>;
}

export async function startStallProxy(
  t: Teardown,
  target: string,
  options: { stallAfterBytes: number },
): Promise<StallProxy> {
  const upstreamUrl = new URL(target);
  const sockets = new Set<net.Socket>();
  let carried = 0;
  let stalling = false;
  let onStall: () => void = () => undefined;
  const stalled = new Promise<void>((resolve) => (onStall = resolve));
  const count = (bytes: number) => {
    carried += bytes;
    if (!stalling && carried >= options.stallAfterBytes) {
      stalling = true;
      onStall();
    }
  };

  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (stalling) {
      // Accept and read, never answer.
      client.resume();
      return;
    }
    let stalledHere = false;
    const upstream = net.connect(Number(upstreamUrl.port), upstreamUrl.hostname);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => {
      if (!stalledHere) client.destroy();
    });
    const forward = (from: net.Socket, to: net.Socket) =>
      from.on('data', (data: Buffer) => {
        if (stalling) stalledHere = true;
        if (stalledHere) return;
        count(data.length);
        to.write(data);
      });
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const proxy: StallProxy = {
    url: `http://127.0.0.1:${port}`,
    stalled,
    resume() {
      stalling = false;
      carried = Number.NEGATIVE_INFINITY;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  t.teardown(() => proxy.close());
  return proxy;
}
