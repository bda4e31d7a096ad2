/**
 * A TCP proxy in front of Redis for a test that must stop a process's Redis traffic at a
 * known command: it forwards both ways as it is, and once the client side has sent
 * `marker` `after` times (counted across every connection), it forwards nothing more from
 * any client after the chunk that did it (the commands wait in the proxy, unanswered) until
 * `release()` (`holdAt`: from the chunk that carries it, held too). A process killed while
 * held never had those commands run. (ioredis writes
 * a pipeline, such as BullMQ's addBulk, as one buffer: the chunk holds all of it.)
 */
import { createServer, connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';

export interface RedisHoldProxy {
  /** `redis://127.0.0.1:<port>`: use it as REDIS_URL. */
  readonly url: string;
  /** Hold every client's traffic once `marker` has gone through `after` times. */
  holdAfter(marker: string, after: number): void;
  /** The same, but the chunk that carries the `at`-th `marker` is held too (its commands never run). */
  holdAt(marker: string, at: number): void;
  /** Whether the hold has begun. */
  holding(): boolean;
  /** How many times the marker has gone through. */
  seen(): number;
  release(): void;
  close(): Promise<void>;
}

export async function startRedisHoldProxy(target: string): Promise<RedisHoldProxy> {
  const upstream = new URL(target);
  let marker: string | undefined;
  let after = Infinity;
  let seen = 0;
  let holding = false;
  // holdAt: the chunk reaching the count is held, not forwarded
  let holdItsChunk = false;
  const heldChunks: { to: Socket; data: Buffer }[] = [];
  const sockets = new Set<Socket>();
  const occurrences = (data: Buffer): number => {
    if (marker === undefined) return 0;
    const text = data.toString('latin1');
    let n = 0;
    for (let at = text.indexOf(marker); at >= 0; at = text.indexOf(marker, at + marker.length)) n++;
    return n;
  };
  const server = createServer((client) => {
    const redis = connect(Number(upstream.port || 6379), upstream.hostname);
    sockets.add(client).add(redis);
    client.on('data', (data) => {
      if (holding) return void heldChunks.push({ to: redis, data });
      const n = occurrences(data);
      if (holdItsChunk && seen + n >= after) {
        seen += n;
        holding = true;
        return void heldChunks.push({ to: redis, data });
      }
      redis.write(data);
      seen += n;
      if (seen >= after) holding = true;
    });
    redis.on('data', (data) => client.write(data));
    const closed = (): void => {
      client.destroy();
      redis.destroy();
      sockets.delete(client);
      sockets.delete(redis);
    };
    client.on('close', closed).on('error', closed);
    redis.on('close', closed).on('error', closed);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    holdAfter(m, n) {
      marker = m;
      after = n;
      holdItsChunk = false;
    },
    holdAt(m, n) {
      marker = m;
      after = n;
      holdItsChunk = true;
    },
    holding: () => holding,
    seen: () => seen,
    release() {
      holding = false;
      after = Infinity;
      for (const { to, data } of heldChunks.splice(0)) if (!to.destroyed) to.write(data);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
