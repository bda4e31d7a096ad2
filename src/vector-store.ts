/**
 * The vector store as the pipeline sees it. The Qdrant implementation lives in
 * `qdrant-store.ts`; unit tests use a fake behind this interface.
 */
import pRetry from 'p-retry';
import { ServiceError } from './errors.js';

/** Payload of every point; see the README for the meaning of each field. */
export interface PointPayload {
  readonly bucket: string;
  readonly key: string;
  readonly etag: string;
  readonly size: number;
  readonly last_modified: string;
  readonly modality: 'text' | 'image' | 'video' | 'fused' | 'multi_images';
  readonly chunk: number;
  readonly chunk_count: number;
  readonly model: string;
  readonly dimension: number;
  /** Hash of the embedding parameters (model, dimension, chunking, fps, instruct). */
  readonly params_hash: string;
  readonly indexed_at: string;
  readonly run_id: string;
  /** Text chunks: UTF-16 range of the chunk in the source text. */
  readonly char_start?: number;
  readonly char_end?: number;
  readonly [extra: string]: unknown;
}

export interface PointRecord {
  /** UUIDv5 of (bucket, key, chunk): see ids.ts. */
  readonly id: string;
  readonly vector: number[];
  readonly payload: PointPayload;
}

export interface StoredPoint {
  readonly id: string;
  readonly payload: Record<string, unknown>;
}

/** Payload fields that get a keyword index, because runs and queries filter on them. */
export const INDEXED_FIELDS = ['bucket', 'key', 'etag', 'modality', 'model', 'run_id', 'params_hash'] as const;

export interface VectorStore {
  /**
   * Creates the collection (cosine distance, `dimension`) with keyword payload indexes if
   * it is missing; an existing collection of another dimension is a ConfigError that says so.
   */
  ensureCollection(collection: string, dimension: number): Promise<void>;
  /** Upserts in batches, each acknowledged only once written (`wait: true`). */
  upsert(collection: string, points: readonly PointRecord[]): Promise<void>;
  /** Points by id with their payloads (missing ids are absent from the result). */
  retrieve(collection: string, ids: readonly string[]): Promise<StoredPoint[]>;
  delete(collection: string, ids: readonly string[]): Promise<void>;
  /**
   * One page of the points whose payload matches every `match` field exactly, with the
   * payload fields asked for; `offset` is the previous page's `next`.
   */
  scroll(
    collection: string,
    match: Readonly<Record<string, string | number>>,
    fields: readonly string[],
    offset?: string,
  ): Promise<{ points: StoredPoint[]; next?: string }>;
  /** Exact number of points (of those whose payload matches every `match` field, when given). */
  count(collection: string, match?: Readonly<Record<string, string | number>>): Promise<number>;
  /**
   * One page of whole points (vector and payload) indexed at or after `since` (ISO time,
   * the payload's `indexed_at`): what was written to a collection after a moment.
   */
  scrollIndexedSince(
    collection: string,
    since: string,
    offset?: string,
  ): Promise<{ points: PointRecord[]; next?: string }>;
  /** The collection an alias points to, if the alias exists. */
  aliasTarget(alias: string): Promise<string | undefined>;
  /** Whether a collection (not an alias) of that name exists. */
  collectionExists(name: string): Promise<boolean>;
  /** Points `alias` at `collection` in one atomic operation (replacing where it pointed). */
  switchAlias(alias: string, collection: string): Promise<void>;
  deleteCollection(name: string): Promise<void>;
  /** The nearest points to `vector` (cosine), best first. */
  search(collection: string, vector: readonly number[], limit: number): Promise<(StoredPoint & { score: number })[]>;
}

/**
 * Upserts, retrying with backoff while the store's errors are transient (unreachable, 5xx,
 * 429): the vectors are paid for and worth waiting for. A refusal is thrown at once.
 */
export async function upsertRetrying(
  vectors: VectorStore,
  collection: string,
  records: readonly PointRecord[],
  opts: { readonly attempts: number; readonly log: { warn(obj: object, msg?: string): void } },
): Promise<void> {
  await pRetry(() => vectors.upsert(collection, records), {
    retries: opts.attempts - 1,
    minTimeout: 1000,
    maxTimeout: 30_000,
    randomize: true,
    shouldRetry: ({ error }) => error instanceof ServiceError && error.retryable,
    onFailedAttempt: ({ error, retriesLeft }) =>
      opts.log.warn({ collection, err: error.message, retriesLeft }, 'upsert failed'),
  });
}
