// The Qdrant VectorStore against the in-process stand-in, or a real Qdrant when QDRANT_URL is
// set. Each test owns a randomly named collection and deletes it, so runs never collide.

import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';

import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { QdrantClient } from '@qdrant/js-client-rest';

import { ConfigError } from '../../src/errors.js';
import { VectorStoreError, createQdrantStore } from '../../src/qdrant-store.js';
import { rememberJson } from '../../src/vector-json.js';
import { INDEXED_FIELDS, type PointRecord, type VectorStore } from '../../src/vector-store.js';
import { clientOf, qdrantForTest, type QdrantForTest } from '../support/qdrant.js';

let qdrant: QdrantForTest;
let client: QdrantClient;

beforeAll(async () => {
  qdrant = await qdrantForTest();
  client = clientOf(qdrant);
});

afterAll(async () => {
  await qdrant.close();
});

function newStore(opts: { batchSize?: number; parallel?: number } = {}): VectorStore {
  return createQdrantStore({ url: qdrant.url, apiKey: qdrant.apiKey, ...opts });
}

/** Runs `body` with a fresh collection name, deleting that collection afterwards if it exists. */
async function withCollection(label: string, body: (name: string) => Promise<void>): Promise<void> {
  const name = `store-${label}-${randomUUID().slice(0, 8)}`;
  try {
    await body(name);
  } finally {
    if ((await client.collectionExists(name)).exists) await client.deleteCollection(name);
  }
}

function makePoints(count: number, dimension: number, runId = 'run-1'): PointRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    id: randomUUID(),
    // Never all zeros: cosine distance cannot normalize a zero vector.
    vector: Array.from({ length: dimension }, (_, d) => 1 + ((i * 7 + d) % 11)),
    payload: {
      bucket: 'media',
      key: `docs/file-${i}.txt`,
      etag: `etag-${i}`,
      size: 100 + i,
      last_modified: '2024-01-02T03:04:05.000Z',
      modality: 'text' as const,
      chunk: 0,
      chunk_count: 1,
      model: 'test-model',
      dimension,
      params_hash: 'hash-1',
      indexed_at: '2024-01-02T03:04:06.000Z',
      run_id: runId,
    },
  }));
}

async function pointCount(name: string): Promise<number> {
  return (await client.count(name, { exact: true })).count;
}

/** The rejection of `promise`, failing the test if it resolves. */
async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection, the call succeeded');
}

/** A local port nothing listens on: bound by us, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  if (address === null || typeof address === 'string') throw new Error('no port was bound');
  return address.port;
}

describe('ensureCollection', () => {
  it('creates a cosine collection of the given size with a keyword index on every indexed field', async () => {
    await withCollection('create', async (name) => {
      await newStore().ensureCollection(name, 8);

      const info = await client.getCollection(name);
      expect(info.config.params.vectors).toMatchObject({ size: 8, distance: 'Cosine' });
      for (const field of INDEXED_FIELDS) {
        expect({ field, type: info.payload_schema[field]?.data_type }).toEqual({ field, type: 'keyword' });
      }
    });
  });

  it('can be called twice, and by two stores at once, without failing or changing the collection', async () => {
    await withCollection('concurrent', async (name) => {
      const a = newStore();
      const b = newStore();
      await Promise.all([a.ensureCollection(name, 8), b.ensureCollection(name, 8), a.ensureCollection(name, 8)]);
      await a.ensureCollection(name, 8);
      // A third store has nothing cached, so it reads the collection the others made.
      await newStore().ensureCollection(name, 8);

      const info = await client.getCollection(name);
      expect(info.config.params.vectors).toMatchObject({ size: 8, distance: 'Cosine' });
      expect(Object.keys(info.payload_schema).sort()).toEqual([...INDEXED_FIELDS].sort());
    });
  });

  it('refuses an existing collection of another dimension with a ConfigError naming both dimensions', async () => {
    await withCollection('mismatch', async (name) => {
      const store = newStore();
      await store.ensureCollection(name, 8);

      for (const caller of [newStore(), store]) {
        const error = await rejectionOf(caller.ensureCollection(name, 16));
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).message).toContain(`"${name}"`);
        expect((error as ConfigError).message).toContain('holds 8-dimensional vectors');
        expect((error as ConfigError).message).toContain('makes 16-dimensional ones');
      }
      expect((await client.getCollection(name)).config.params.vectors).toMatchObject({ size: 8 });
    });
  });

  it('accepts an alias for the collection and checks the dimension of the collection behind it', async () => {
    await withCollection('aliased', async (name) => {
      const alias = `${name}-alias`;
      await newStore().ensureCollection(name, 8);
      await client.updateCollectionAliases({
        actions: [{ create_alias: { collection_name: name, alias_name: alias } }],
      });

      await newStore().ensureCollection(alias, 8);
      const error = await rejectionOf(newStore().ensureCollection(alias, 4));
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toContain(`"${alias}" holds 8-dimensional vectors`);
      expect((await client.getCollections()).collections.map((c) => c.name)).not.toContain(alias);
    });
  });
});

describe('points', () => {
  it('upserts 300 points in batches, no more than `parallel` at once, and retrieves them all with payloads', async () => {
    await withCollection('upsert', async (name) => {
      const store = newStore({ batchSize: 64, parallel: 3 });
      await store.ensureCollection(name, 8);
      const points = makePoints(300, 8);

      let upserts = 0;
      let inFlight = 0;
      let maxInFlight = 0;
      const realFetch = globalThis.fetch;
      const spy = jest.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
        const isUpsert = init?.method === 'PUT' && String(input).endsWith(`/collections/${name}/points?wait=true`);
        if (!isUpsert) return realFetch(input, init);
        upserts += 1;
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          return await realFetch(input, init);
        } finally {
          inFlight -= 1;
        }
      });
      try {
        await store.upsert(name, points);
      } finally {
        spy.mockRestore();
      }
      expect(upserts).toBe(Math.ceil(300 / 64));
      expect(maxInFlight).toBeGreaterThan(1);
      expect(maxInFlight).toBeLessThanOrEqual(3);

      expect(await pointCount(name)).toBe(300);
      const stored = await store.retrieve(
        name,
        points.map((p) => p.id),
      );
      expect(stored).toHaveLength(300);
      const byId = new Map(stored.map((s) => [s.id, s.payload]));
      for (const p of points) expect(byId.get(p.id)).toEqual(p.payload);
    });
  });

  it('sends a vector as the JSON its answer carried, and Qdrant stores what it stores for the formatted vector', async () => {
    await withCollection('vectortext', async (name) => {
      const store = newStore();
      await store.ensureCollection(name, 4);
      // numbers written longer than JSON.stringify writes them, as an API may answer
      const text =
        '[0.1000000000000000055511151231257827, -2.5E-1 ,0.333333333333333314829616256247390992939472198486328125,1]';
      const vector = JSON.parse(text) as number[];
      rememberJson(vector, text);
      const [a, b] = makePoints(2, 4);
      if (!a || !b) throw new Error('no points made');
      const bodies: string[] = [];
      const realFetch = globalThis.fetch;
      const spy = jest.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
        if (init?.method === 'PUT' && typeof init.body === 'string') bodies.push(init.body);
        return realFetch(input, init);
      });
      try {
        await store.upsert(name, [
          { ...a, vector },
          { ...b, vector: [...vector] },
        ]);
      } finally {
        spy.mockRestore();
      }
      expect(bodies).toHaveLength(1);
      expect(bodies[0]).toContain(`"vector":${text}`);
      expect(bodies[0]).toContain(`"vector":${JSON.stringify(vector)}`);
      const { points } = await store.scrollIndexedSince(name, '2000-01-01T00:00:00.000Z');
      const byId = new Map(points.map((p) => [p.id, p]));
      expect(byId.get(a.id)?.vector).toHaveLength(4);
      expect(byId.get(a.id)?.vector).toEqual(byId.get(b.id)?.vector);
      expect(byId.get(a.id)?.payload).toEqual(a.payload);
    });
  });

  it('overwrites points when the same ids are upserted again', async () => {
    await withCollection('overwrite', async (name) => {
      const store = newStore();
      await store.ensureCollection(name, 8);
      const first = makePoints(300, 8, 'run-1');
      await store.upsert(name, first);
      const second = first.map((p) => ({ ...p, payload: { ...p.payload, run_id: 'run-2' } }));
      await store.upsert(name, second);

      expect(await pointCount(name)).toBe(300);
      const stored = await store.retrieve(
        name,
        first.map((p) => p.id),
      );
      expect(new Set(stored.map((s) => s.payload.run_id))).toEqual(new Set(['run-2']));
    });
  });

  it('deletes points by id and leaves the others', async () => {
    await withCollection('delete', async (name) => {
      const store = newStore();
      await store.ensureCollection(name, 8);
      const points = makePoints(300, 8);
      await store.upsert(name, points);

      const gone = points.slice(0, 100).map((p) => p.id);
      const kept = points.slice(100).map((p) => p.id);
      await store.delete(name, gone);

      expect(await pointCount(name)).toBe(200);
      expect(await store.retrieve(name, gone)).toEqual([]);
      expect((await store.retrieve(name, kept)).map((s) => s.id).sort()).toEqual([...kept].sort());
    });
  });

  it('leaves unknown ids out of what retrieve returns', async () => {
    await withCollection('unknown', async (name) => {
      const store = newStore();
      await store.ensureCollection(name, 8);
      const points = makePoints(2, 8);
      await store.upsert(name, points);

      const known = points[0]?.id ?? '';
      const stored = await store.retrieve(name, [randomUUID(), known, randomUUID()]);
      expect(stored.map((s) => s.id)).toEqual([known]);
    });
  });
});

describe('errors', () => {
  it("turns a wrong vector length into a non-retryable 400 VectorStoreError carrying Qdrant's message", async () => {
    await withCollection('baddim', async (name) => {
      const store = newStore();
      await store.ensureCollection(name, 4);
      const [point] = makePoints(1, 3);
      if (point === undefined) throw new Error('no point made');

      const error = await rejectionOf(store.upsert(name, [point]));
      expect(error).toBeInstanceOf(VectorStoreError);
      const e = error as VectorStoreError;
      expect({ status: e.status, retryable: e.retryable }).toEqual({ status: 400, retryable: false });
      expect(e.message).toContain('Vector dimension error');
      expect(e.message).toContain(`"${name}"`);
    });
  });

  it('reports a missing collection as a non-retryable 404 VectorStoreError', async () => {
    await withCollection('missing', async (name) => {
      const error = await rejectionOf(newStore().upsert(name, makePoints(1, 8)));
      expect(error).toBeInstanceOf(VectorStoreError);
      const e = error as VectorStoreError;
      expect({ status: e.status, retryable: e.retryable }).toEqual({ status: 404, retryable: false });
      expect(e.message).toContain(`Collection \`${name}\` doesn't exist`);
    });
  });

  it('reports an unreachable server as a retryable VectorStoreError that does not reveal the API key', async () => {
    const port = await closedPort();
    const apiKey = `secret-${randomUUID()}`;
    // The client warns about an API key over plain http; expected here, so kept out of the output.
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    let store: VectorStore;
    try {
      store = createQdrantStore({ url: `http://127.0.0.1:${port}`, apiKey });
    } finally {
      warn.mockRestore();
    }

    const requests = [
      () => store.ensureCollection('unreachable', 8),
      () => store.upsert('unreachable', makePoints(1, 8)),
    ];
    for (const request of requests) {
      const error = await rejectionOf(request());
      expect(error).toBeInstanceOf(VectorStoreError);
      const e = error as VectorStoreError;
      expect({ status: e.status, retryable: e.retryable }).toEqual({ status: 0, retryable: true });
      expect(e.message).toContain('"unreachable"');
      expect(e.message).not.toContain(apiKey);
    }
  });
});
