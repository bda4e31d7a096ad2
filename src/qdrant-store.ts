/**
 * The VectorStore over Qdrant's REST API (@qdrant/js-client-rest 1.18). Every write waits
 * for Qdrant to apply it, so a job that reports success has its points searchable.
 */

import { QdrantClient, type Schemas } from '@qdrant/js-client-rest';
import pLimit from 'p-limit';

import { ConfigError } from './errors.js';
import { describeFailure, isRecord, VectorStoreError } from './qdrant-errors.js';
import { checkDimension, layoutOf, VECTOR_DISTANCE, vectorSize } from './collection-layout.js';
import type { CollectionLayout } from './collection-layout.js';
import { redact } from './redact.js';
import { INDEXED_FIELDS, type PointRecord, type StoredPoint, type VectorStore } from './vector-store.js';
import { vectorJson } from './vector-json.js';

export { VectorStoreError } from './qdrant-errors.js';

export interface QdrantStoreOptions {
  url: string;
  /** Unset or empty: no key is sent. */
  apiKey?: string | undefined;
  /** Points per upsert request; Qdrant recommends 64 to 256 for bulk loads. */
  batchSize?: number;
  /** Requests in flight at once per call; Qdrant recommends 2 to 4 streams. */
  parallel?: number;
}

/** A VectorStore that can also describe a collection (for `mm-ingest doctor`). */
export interface QdrantStore extends VectorStore {
  /** The collection's (or alias's) vector layout; undefined when neither exists. */
  describeCollection(name: string): Promise<CollectionLayout | undefined>;
}

/** Ids per delete request, and points per scroll page: ids are small, so larger batches than upserts. */
const ID_BATCH = 256;
/**
 * Ids per retrieve request: a whole listing page (S3 gives at most 1,000 keys a page), so
 * the incremental check of a page costs one request, as the README says.
 */
const RETRIEVE_BATCH = 1000;

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Qdrant's upsert (`PUT /collections/NAME/points?wait=true`), its body written here: the
 * client's own upsert serializes through a replacer function called once per number, which
 * made the JSON of a job's points (20 vectors of 2,560 numbers) cost about 20 ms, the largest
 * share of a worker's CPU on short texts. Here each vector goes as the text it came in
 * (vector-json.ts) or through JSON.stringify without a replacer; ids and payloads are
 * serialized as the client would (they hold no bigint). The address is the client's: the
 * URL's scheme and host, its port or 6333, no path. A failure is thrown in the shapes the
 * client throws (an HTTP status with Qdrant's body, a 429's Retry-After, fetch's network
 * errors, a timeout after the client's 300 s), so `describeFailure` reads it the same way.
 */
function pointWriter(
  url: string,
  apiKey: string | undefined,
): (collection: string, points: readonly PointRecord[]) => Promise<void> {
  const parsed = new URL(url);
  const base = `${parsed.protocol}//${parsed.hostname}:${parsed.port || '6333'}`;
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (apiKey !== undefined) headers['api-key'] = apiKey;
  return async (collection, points) => {
    let body = '{"points":[';
    points.forEach((p, i) => {
      body += `${i === 0 ? '' : ','}{"id":${JSON.stringify(p.id)},"vector":${vectorJson(p.vector)},"payload":${JSON.stringify(p.payload)}}`;
    });
    body += ']}';
    const response = await fetch(`${base}/collections/${encodeURIComponent(collection)}/points?wait=true`, {
      method: 'PUT',
      headers,
      body,
      signal: AbortSignal.timeout(UPSERT_TIMEOUT_MS),
    });
    const text = await response.text();
    if (response.status === 200 || response.status === 201) return;
    let data: unknown = text;
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON: the text as it is
    }
    const retryAfter = response.headers.get('retry-after');
    if (response.status === 429 && retryAfter !== null && Number.isFinite(Number(retryAfter)))
      throw Object.assign(new Error(response.statusText || 'Too Many Requests'), { retry_after: Number(retryAfter) });
    if (response.ok)
      throw new Error(`Unexpected Response: ${response.status} (${response.statusText || 'Unrecognized Status Code'})`);
    throw Object.assign(new Error(response.statusText), {
      name: 'ApiError',
      status: response.status,
      statusText: response.statusText,
      data,
    });
  };
}

/** The Qdrant client's default request timeout, kept for the upserts written here. */
const UPSERT_TIMEOUT_MS = 300_000;

function positiveInt(value: number | undefined, fallback: number, setting: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new ConfigError(setting, `must be a positive integer, got ${value}`);
  return value;
}

export function createQdrantStore(opts: QdrantStoreOptions): QdrantStore {
  const batchSize = positiveInt(opts.batchSize, 128, 'qdrant batchSize');
  const parallel = positiveInt(opts.parallel, 2, 'qdrant parallel');
  const apiKey = opts.apiKey === '' ? undefined : opts.apiKey;
  const client = new QdrantClient({
    url: opts.url,
    ...(apiKey !== undefined ? { apiKey } : {}),
    checkCompatibility: false,
  });
  const upsertPoints = pointWriter(opts.url, apiKey);
  /** Collection -> its dimension once ensured; a pending promise while being ensured. */
  const ensured = new Map<string, Promise<number>>();

  function fail(operation: string, collection: string, error: unknown): VectorStoreError {
    const f = describeFailure(error);
    // Qdrant or a proxy in front of it may echo a URL, a header, the key: none goes into the error
    const message = redact(
      `Qdrant ${operation} on collection "${collection}" failed: ${f.status === 0 ? '' : `${f.status} `}${f.detail}`,
      [apiKey],
    );
    // A collection deleted behind our back must be re-created by the next ensureCollection.
    if (f.status === 404) ensured.delete(collection);
    return new VectorStoreError(message, f.status, f.retryable, collection, f.retryAfterSeconds);
  }

  async function call<T>(operation: string, collection: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      throw fail(operation, collection, error);
    }
  }

  /** Runs `task` over `batches`, `parallel` at a time; stops starting new ones after a failure. */
  async function inBatches<T, R>(batches: T[][], task: (batch: T[]) => Promise<R>): Promise<R[]> {
    const limit = pLimit(parallel);
    let failed = false;
    const settled = await Promise.allSettled(
      batches.map((batch) =>
        limit(async () => {
          if (failed) return undefined;
          try {
            return await task(batch);
          } catch (error) {
            failed = true;
            throw error;
          }
        }),
      ),
    );
    // Waiting for every batch before throwing means a retry never races our own writes.
    const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (rejected !== undefined) throw rejected.reason;
    return settled.map((s) => (s as PromiseFulfilledResult<R>).value);
  }

  /** The collection's info, or undefined when neither a collection nor an alias has the name. */
  async function describe(name: string): Promise<Schemas['CollectionInfo'] | undefined> {
    try {
      return await client.getCollection(name);
    } catch (error) {
      if (isRecord(error) && error.status === 404) return undefined;
      throw fail('getCollection', name, error);
    }
  }

  async function createIndexes(name: string, info: Schemas['CollectionInfo']): Promise<void> {
    // One at a time: each index build takes the collection's update lock anyway.
    for (const field of INDEXED_FIELDS) {
      // An existing index of any type is someone's deliberate choice; leave it be.
      if (info.payload_schema[field] !== undefined) continue;
      await call('createPayloadIndex', name, () =>
        client.createPayloadIndex(name, { field_name: field, field_schema: 'keyword', wait: true }),
      );
    }
  }

  async function ensure(name: string, dimension: number): Promise<number> {
    let info = await describe(name);
    if (info === undefined) {
      try {
        await client.createCollection(name, { vectors: { size: dimension, distance: VECTOR_DISTANCE } });
      } catch (error) {
        // Another worker created it between our read and our create: its dimension decides.
        const f = describeFailure(error);
        const raced = f.status === 409 || (f.status === 400 && /already exists/i.test(f.detail));
        if (!raced) throw fail('createCollection', name, error);
      }
      info = await describe(name);
      if (info === undefined) {
        throw new VectorStoreError(`Qdrant collection "${name}" vanished right after being created`, 404, true, name);
      }
    }
    const size = vectorSize(name, info);
    checkDimension(name, size, dimension);
    await createIndexes(name, info);
    return size;
  }

  return {
    async ensureCollection(collection, dimension) {
      let pending = ensured.get(collection);
      if (pending === undefined) {
        pending = ensure(collection, dimension);
        ensured.set(collection, pending);
        // A failed attempt must not stick: the next call tries again.
        pending.catch(() => {
          if (ensured.get(collection) === pending) ensured.delete(collection);
        });
      }
      checkDimension(collection, await pending, dimension);
    },

    async upsert(collection, points: readonly PointRecord[]) {
      await inBatches(chunks(points, batchSize), (batch) =>
        call('upsert', collection, () => upsertPoints(collection, batch)),
      );
    },

    async retrieve(collection, ids): Promise<StoredPoint[]> {
      const found = await inBatches(chunks(ids, RETRIEVE_BATCH), (batch) =>
        call('retrieve', collection, () =>
          client.retrieve(collection, { ids: batch, with_payload: true, with_vector: false }),
        ),
      );
      return found.flat().map((r) => ({ id: String(r.id), payload: { ...r.payload } }));
    },

    async delete(collection, ids) {
      await inBatches(chunks(ids, ID_BATCH), (batch) =>
        call('delete', collection, () => client.delete(collection, { points: batch, wait: true })),
      );
    },

    async scroll(collection, match, fields, offset) {
      const must = Object.entries(match).map(([key, value]) => ({ key, match: { value } }));
      const page = await call('scroll', collection, () =>
        client.scroll(collection, {
          filter: { must },
          limit: ID_BATCH,
          with_payload: [...fields],
          with_vector: false,
          ...(offset !== undefined ? { offset } : {}),
        }),
      );
      const next = page.next_page_offset;
      return {
        points: page.points.map((p) => ({ id: String(p.id), payload: { ...p.payload } })),
        ...(typeof next === 'string' || typeof next === 'number' ? { next: String(next) } : {}),
      };
    },

    async count(collection, match = {}) {
      const must = Object.entries(match).map(([key, value]) => ({ key, match: { value } }));
      const res = await call('count', collection, () =>
        client.count(collection, { exact: true, ...(must.length > 0 ? { filter: { must } } : {}) }),
      );
      return res.count;
    },

    async scrollIndexedSince(collection, since, offset) {
      const page = await call('scroll', collection, () =>
        client.scroll(collection, {
          filter: { must: [{ key: 'indexed_at', range: { gte: since } }] },
          limit: ID_BATCH,
          with_payload: true,
          with_vector: true,
          ...(offset !== undefined ? { offset } : {}),
        }),
      );
      const next = page.next_page_offset;
      return {
        points: page.points.map((p) => ({
          id: String(p.id),
          vector: p.vector as number[],
          payload: { ...p.payload } as PointRecord['payload'],
        })),
        ...(typeof next === 'string' || typeof next === 'number' ? { next: String(next) } : {}),
      };
    },

    async aliasTarget(alias) {
      const { aliases } = await call('getAliases', alias, () => client.getAliases());
      return aliases.find((a) => a.alias_name === alias)?.collection_name;
    },

    async collectionExists(name) {
      const { collections } = await call('getCollections', name, () => client.getCollections());
      return collections.some((c) => c.name === name);
    },

    async switchAlias(alias, collection) {
      // delete + create in one request: Qdrant applies the list atomically, so a search
      // through the alias sees the old collection or the new one, never none
      const actions = [
        { delete_alias: { alias_name: alias } },
        { create_alias: { alias_name: alias, collection_name: collection } },
      ];
      const current = await this.aliasTarget(alias);
      await call('updateCollectionAliases', collection, () =>
        client.updateCollectionAliases({ actions: current === undefined ? actions.slice(1) : actions }),
      );
    },

    async search(collection, vector, limit) {
      const res = await call('query', collection, () =>
        client.query(collection, { query: [...vector], limit, with_payload: true, with_vector: false }),
      );
      return res.points.map((p) => ({ id: String(p.id), score: p.score, payload: { ...p.payload } }));
    },

    async describeCollection(name) {
      const info = await describe(name);
      return info === undefined ? undefined : layoutOf(info);
    },

    async deleteCollection(name) {
      ensured.delete(name);
      await call('deleteCollection', name, () => client.deleteCollection(name));
    },
  };
}
