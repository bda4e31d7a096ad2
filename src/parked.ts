/**
 * Vectors already paid for whose write Qdrant refused for good (a collection deleted
 * under a run, a store that stayed down past every retry). They are kept in Redis, per
 * collection and point id, outside job data, for a week; the next job that plans the same
 * point (the job's retry, or `retry-failed`'s run) writes the kept vector instead of
 * buying it again, when the kept point is for the same content (ETag, params hash, chunk
 * count). Bounded: a collection keeps at most `maxPoints`; beyond that, vectors are not
 * kept (and a retry pays for them again).
 *
 * Key: `{p}:parked:{collection}` hash, point id -> JSON { payload, vector as base64 float32 }.
 */
import type { Cluster, Redis } from 'ioredis';
import type { PointPayload, PointRecord } from './vector-store.js';

export interface ParkedVectors {
  /** Keeps the records; returns how many were kept (0 once the bound is reached). */
  park(collection: string, records: readonly PointRecord[]): Promise<number>;
  /** The kept records among these ids. */
  find(collection: string, ids: readonly string[]): Promise<PointRecord[]>;
  /** Forgets records once written. */
  drop(collection: string, ids: readonly string[]): Promise<void>;
}

/**
 * Writes points with `write`; when the store refuses them for good, keeps them (when a
 * keeper is given) for the job's retry and throws the error.
 */
export async function writeOrPark(
  write: (collection: string, records: PointRecord[]) => Promise<void>,
  parked: ParkedVectors | undefined,
  log: { warn(obj: object, msg?: string): void },
  collection: string,
  records: PointRecord[],
): Promise<void> {
  try {
    await write(collection, records);
  } catch (err) {
    const kept = (await parked?.park(collection, records).catch(() => 0)) ?? 0;
    log.warn(
      { collection, points: records.length, kept, err: (err as Error).message },
      'write refused: vectors kept for the retry',
    );
    throw err;
  }
}

const TTL_MS = 7 * 24 * 3600 * 1000;

function encode(vector: readonly number[]): string {
  return Buffer.from(new Float32Array(vector).buffer).toString('base64');
}

function decode(data: string): number[] {
  const bytes = Buffer.from(data, 'base64');
  return Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
}

export class RedisParkedVectors implements ParkedVectors {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
    private readonly maxPoints = 100_000,
  ) {}

  private key(collection: string): string {
    return `${this.prefix}:parked:${collection}`;
  }

  async park(collection: string, records: readonly PointRecord[]): Promise<number> {
    if (records.length === 0) return 0;
    if ((await this.redis.hlen(this.key(collection))) + records.length > this.maxPoints) return 0;
    const fields: Record<string, string> = {};
    for (const r of records) fields[r.id] = JSON.stringify({ payload: r.payload, vector: encode(r.vector) });
    await this.redis.multi().hset(this.key(collection), fields).pexpire(this.key(collection), TTL_MS).exec();
    return records.length;
  }

  async find(collection: string, ids: readonly string[]): Promise<PointRecord[]> {
    if (ids.length === 0) return [];
    const values = await this.redis.hmget(this.key(collection), ...ids);
    return values.flatMap((v, i) => {
      if (v === null) return [];
      const { payload, vector } = JSON.parse(v) as { payload: PointPayload; vector: string };
      return [{ id: ids[i]!, payload, vector: decode(vector) }];
    });
  }

  async drop(collection: string, ids: readonly string[]): Promise<void> {
    if (ids.length > 0) await this.redis.hdel(this.key(collection), ...ids);
  }
}
