import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy in front of a real registry, for tests that need a slow
 * or a vanished registry. Bytes of one direction (by default client →
 * upstream: Docker pushing; or upstream → client: Docker pulling) go through
 * one token bucket shared by every connection, so the whole transfer is held
 * to `bytesPerSecond` however many layers Docker moves in parallel; the other
 * direction is not throttled.
 *
 * It listens on 127.0.0.1 (Docker treats 127.0.0.0/8 as an insecure registry,
 * so plain http works) and stops on its own after `maxLifetimeMs`, so a test
 * that forgets to close it cannot keep the process alive.
 */
export interface ThrottleProxy {
  /** `127.0.0.1:<port>`: use it as the registry host */
  readonly host: string;
  readonly port: number;
  /** bytes that went client → upstream so far */
  bytesUp(): number;
  /** connections accepted so far */
  connections(): number;
  /** Stops listening and destroys every socket; idempotent. */
  close(): Promise<void>;
}

export interface ThrottleProxyOptions {
  /** upstream `host:port` (the real registry) */
  upstream: string;
  /** rate of the throttled direction; Infinity: no throttle */
  bytesPerSecond: number;
  /** which way is throttled: 'up' (client → upstream, a push; the default) or 'down' (a pull) */
  direction?: 'up' | 'down';
  /** closes itself after this long; default 10 min */
  maxLifetimeMs?: number;
  /** refuses connections beyond this many at once; default 64 */
  maxConnections?: number;
}

const TICK_MS = 50;

export async function startThrottleProxy(o: ThrottleProxyOptions): Promise<ThrottleProxy> {
  const sep = o.upstream.lastIndexOf(':');
  const upHost = o.upstream.slice(0, sep);
  const upPort = Number(o.upstream.slice(sep + 1));
  if (!upHost || !Number.isInteger(upPort) || upPort <= 0) throw new Error(`upstream must be host:port, got ${o.upstream}`);
  if (!(o.bytesPerSecond > 0)) throw new Error('bytesPerSecond must be > 0');
  const direction = o.direction ?? 'up';

  const sockets = new Set<Socket>();
  let closed = false;
  let up = 0;
  let accepted = 0;

  // Token bucket: refilled every tick, never holding more than one tick's worth
  // (so an idle pause does not let a burst through). Waiters are served FIFO.
  const perTick = Number.isFinite(o.bytesPerSecond) ? Math.max(1, Math.floor((o.bytesPerSecond * TICK_MS) / 1000)) : Infinity;
  let tokens = perTick;
  const waiters: { want: number; grant: (n: number) => void }[] = [];
  const serve = (): void => {
    while (waiters.length && tokens > 0) {
      const w = waiters.shift()!;
      const n = Math.min(w.want, tokens);
      tokens -= n;
      w.grant(n);
    }
  };
  const ticker = setInterval(() => {
    tokens = perTick;
    serve();
  }, TICK_MS);
  ticker.unref();
  /** Resolves with how many bytes (1..want) may go now; 0 once the proxy is closed. */
  const take = (want: number): Promise<number> => {
    if (closed) return Promise.resolve(0);
    if (perTick === Infinity) return Promise.resolve(want);
    return new Promise((grant) => {
      waiters.push({ want, grant });
      serve();
    });
  };

  const server: Server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (client) => {
    if (closed) {
      client.destroy();
      return;
    }
    accepted++;
    const upstream = createConnection({ host: upHost, port: upPort, allowHalfOpen: true });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    // Half-open on both sides: a client that finished sending still gets its
    // answer; once either socket is fully closed, the other goes too.
    const bothDown = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', bothDown);
    upstream.on('close', bothDown);

    // One direction goes through the bucket, the other as fast as it comes.
    const [slowFrom, slowTo] = direction === 'up' ? [client, upstream] : [upstream, client];
    const [fastFrom, fastTo] = direction === 'up' ? [upstream, client] : [client, upstream];
    fastFrom.pipe(fastTo);

    // The slow way: one chunk at a time, in slices the bucket allows.
    let pumping = Promise.resolve();
    slowFrom.on('data', (chunk: Buffer) => {
      slowFrom.pause();
      pumping = pumping.then(async () => {
        let off = 0;
        while (off < chunk.length && !closed && !slowTo.destroyed) {
          const n = await take(chunk.length - off);
          if (n === 0) return;
          const ok = slowTo.write(chunk.subarray(off, off + n));
          if (direction === 'up') up += n;
          off += n;
          if (!ok && !slowTo.destroyed) await new Promise<void>((r) => slowTo.once('drain', r).once('close', r));
        }
        if (!closed && !slowFrom.destroyed) slowFrom.resume();
      });
    });
    slowFrom.on('end', () => {
      void pumping.then(() => slowTo.end());
    });
    upstream.once('connect', () => client.resume());
  });
  server.maxConnections = o.maxConnections ?? 64;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('proxy did not get a TCP port');
  const port = address.port;

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      closed = true;
      clearInterval(ticker);
      clearTimeout(lifetime);
      for (const w of waiters.splice(0)) w.grant(0);
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
    return closing;
  };
  const lifetime = setTimeout(() => void close(), o.maxLifetimeMs ?? 600_000);
  lifetime.unref();

  return {
    host: `127.0.0.1:${port}`,
    port,
    bytesUp: () => up,
    connections: () => accepted,
    close,
  };
}
