// Drives the Qdrant stand-in with the real @qdrant/js-client-rest. The same tests run against
// a real Qdrant when QDRANT_URL is set, which is what keeps the stand-in honest.

import { randomUUID } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { QdrantClient } from '@qdrant/js-client-rest';

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

function uniqueName(label: string): string {
  return `standin-${label}-${randomUUID().slice(0, 8)}`;
}

/** Runs `body` against a fresh Cosine collection, deleting it afterwards whatever happens. */
async function withCollection(label: string, size: number, body: (name: string) => Promise<void>): Promise<void> {
  const name = uniqueName(label);
  await client.createCollection(name, { vectors: { size, distance: 'Cosine' } });
  try {
    await body(name);
  } finally {
    await client.deleteCollection(name);
  }
}

/** The HTTP status and Qdrant's `status.error` text of a request expected to fail. */
async function failure(
  request: Promise<unknown>,
): Promise<{ status: number | undefined; message: string | undefined }> {
  try {
    await request;
  } catch (error) {
    const e = error as { status?: number; data?: { status?: { error?: string } } };
    return { status: e.status, message: e.data?.status?.error };
  }
  throw new Error('expected the request to fail, it succeeded');
}

/** A raw request, for what the client cannot send (bad JSON, unknown routes). */
async function rawRequest(method: string, path: string, body?: string): Promise<{ status: number; json: unknown }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (qdrant.apiKey !== undefined) headers['api-key'] = qdrant.apiKey;
  const response = await fetch(`${qdrant.url}${path}`, { method, headers, body: body ?? null });
  const text = await response.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // Non-JSON answers (an empty 404) are kept as text.
  }
  return { status: response.status, json };
}

const ids = (points: ReadonlyArray<{ id: string | number }>): Array<string | number> => points.map((p) => p.id);

describe('collections', () => {
  it('creates a collection, reports its vector config, and deletes it', async () => {
    const name = uniqueName('lifecycle');
    expect(await client.createCollection(name, { vectors: { size: 4, distance: 'Cosine' } })).toBe(true);

    expect(await client.collectionExists(name)).toEqual({ exists: true });
    const info = await client.getCollection(name);
    expect(info.status).toBe('green');
    expect(info.points_count).toBe(0);
    expect(info.config.params.vectors).toMatchObject({ size: 4, distance: 'Cosine' });
    expect((await client.getCollections()).collections.map((c) => c.name)).toContain(name);

    expect(await client.deleteCollection(name)).toBe(true);
    expect(await client.collectionExists(name)).toEqual({ exists: false });
    expect(await client.deleteCollection(name)).toBe(false);
  });

  it('refuses to create a collection that already exists with 409', async () => {
    await withCollection('duplicate', 4, async (name) => {
      const error = await failure(client.createCollection(name, { vectors: { size: 4, distance: 'Cosine' } }));
      expect(error).toEqual({ status: 409, message: `Wrong input: Collection \`${name}\` already exists!` });
    });
  });

  it('answers 404 naming the collection when it does not exist', async () => {
    const name = uniqueName('missing');
    expect(await failure(client.getCollection(name))).toEqual({
      status: 404,
      message: `Not found: Collection \`${name}\` doesn't exist!`,
    });
    expect((await failure(client.count(name))).status).toBe(404);
  });

  it('keeps optimizer and HNSW settings given at creation and changed later', async () => {
    const name = uniqueName('config');
    await client.createCollection(name, {
      vectors: { size: 4, distance: 'Cosine' },
      optimizers_config: { indexing_threshold: 0 },
      hnsw_config: { m: 0 },
    });
    try {
      let info = await client.getCollection(name);
      expect(info.config.optimizer_config.indexing_threshold).toBe(0);
      expect(info.config.hnsw_config.m).toBe(0);

      expect(
        await client.updateCollection(name, {
          optimizers_config: { indexing_threshold: 20000 },
          hnsw_config: { m: 16 },
        }),
      ).toBe(true);
      info = await client.getCollection(name);
      expect(info.config.optimizer_config.indexing_threshold).toBe(20000);
      expect(info.config.hnsw_config.m).toBe(16);
    } finally {
      await client.deleteCollection(name);
    }
  });

  it('lists a created payload index in the collection info', async () => {
    await withCollection('index', 2, async (name) => {
      await client.upsert(name, {
        wait: true,
        points: [
          { id: 1, vector: [1, 0], payload: { color: 'red' } },
          { id: 2, vector: [0, 1], payload: { color: 'blue' } },
          { id: 3, vector: [1, 1], payload: { size: 3 } },
        ],
      });
      const result = await client.createPayloadIndex(name, {
        field_name: 'color',
        field_schema: 'keyword',
        wait: true,
      });
      expect(result.status).toBe('completed');

      const info = await client.getCollection(name);
      expect(info.payload_schema.color).toMatchObject({ data_type: 'keyword', points: 2 });
    });
  });
});

describe('points', () => {
  it('stores points with their payload and returns them by id, UUIDs in lowercase', async () => {
    await withCollection('upsert', 4, async (name) => {
      const uuid = 'A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF';
      const result = await client.upsert(name, {
        wait: true,
        points: [
          { id: 1, vector: [3, 4, 0, 0], payload: { title: 'one', tags: ['a', 'b'] } },
          { id: uuid, vector: [0, 0, 1, 0], payload: { title: 'uuid' } },
        ],
      });
      expect(result.status).toBe('completed');

      const found = await client.retrieve(name, { ids: [1, uuid, 999] });
      expect(found).toEqual([
        { id: 1, payload: { title: 'one', tags: ['a', 'b'] } },
        { id: uuid.toLowerCase(), payload: { title: 'uuid' } },
      ]);

      // Cosine collections store the normalized vector.
      const [withVector] = await client.retrieve(name, { ids: [1], with_vector: true, with_payload: false });
      expect(withVector?.payload).toBeUndefined();
      const vector = withVector?.vector as number[];
      expect(vector[0]).toBeCloseTo(0.6, 6);
      expect(vector[1]).toBeCloseTo(0.8, 6);
    });
  });

  it('accepts the batch form of upsert', async () => {
    await withCollection('batch', 2, async (name) => {
      await client.upsert(name, {
        wait: true,
        batch: {
          ids: [5, 6],
          vectors: [
            [1, 0],
            [0, 1],
          ],
          payloads: [{ n: 5 }, { n: 6 }],
        },
      });
      const found = await client.retrieve(name, { ids: [5, 6] });
      expect(found.map((p) => p.payload)).toEqual([{ n: 5 }, { n: 6 }]);
    });
  });

  it('acknowledges a write without wait and reports it completed with wait=true', async () => {
    await withCollection('wait', 2, async (name) => {
      const acknowledged = await client.upsert(name, { wait: false, points: [{ id: 1, vector: [1, 0] }] });
      expect(acknowledged.status).toBe('acknowledged');
      expect(typeof acknowledged.operation_id).toBe('number');

      const completed = await client.upsert(name, { wait: true, points: [{ id: 2, vector: [0, 1] }] });
      expect(completed.status).toBe('completed');
      expect(completed.operation_id).toBeGreaterThan(acknowledged.operation_id ?? -1);
    });
  });

  it('rejects a point id that is neither an unsigned integer nor a UUID with the exact 400', async () => {
    await withCollection('bad-id', 2, async (name) => {
      for (const badId of ['doc-1', '1']) {
        const error = await failure(client.upsert(name, { wait: true, points: [{ id: badId, vector: [1, 0] }] }));
        expect(error).toEqual({
          status: 400,
          message: `Format error in JSON body: value ${badId} is not a valid point ID, valid values are either an unsigned integer or a UUID`,
        });
      }
    });
  });

  it('rejects a vector of the wrong dimension with 400', async () => {
    await withCollection('bad-dim', 4, async (name) => {
      const error = await failure(client.upsert(name, { wait: true, points: [{ id: 1, vector: [1, 2, 3] }] }));
      expect(error).toEqual({ status: 400, message: 'Wrong input: Vector dimension error: expected dim: 4, got 3' });
      expect((await client.count(name)).count).toBe(0);
    });
  });

  it('merges a payload into the selected points', async () => {
    await withCollection('set-payload', 2, async (name) => {
      await client.upsert(name, { wait: true, points: [{ id: 1, vector: [1, 0], payload: { a: 1 } }] });
      await client.setPayload(name, { wait: true, points: [1], payload: { b: 2 } });
      expect((await client.retrieve(name, { ids: [1] }))[0]?.payload).toEqual({ a: 1, b: 2 });
    });
  });

  it('deletes points by id and by filter', async () => {
    await withCollection('delete', 2, async (name) => {
      await client.upsert(name, {
        wait: true,
        points: [1, 2, 3, 4, 5].map((id) => ({ id, vector: [1, id], payload: { even: id % 2 === 0 } })),
      });

      const byId = await client.delete(name, { wait: true, points: [1, 2] });
      expect(byId.status).toBe('completed');
      expect(ids((await client.scroll(name)).points)).toEqual([3, 4, 5]);

      await client.delete(name, { wait: true, filter: { must: [{ key: 'even', match: { value: false } }] } });
      expect(ids((await client.scroll(name)).points)).toEqual([4]);
    });
  });
});

describe('scroll and count', () => {
  it('pages through 25 points in id order, offset inclusive, next_page_offset null at the end', async () => {
    await withCollection('scroll', 2, async (name) => {
      // Inserted out of order: scroll must sort by id, not by insertion.
      const order = Array.from({ length: 25 }, (_, i) => ((i * 7) % 25) + 1);
      await client.upsert(name, { wait: true, points: order.map((id) => ({ id, vector: [1, id] })) });

      const first = await client.scroll(name, { limit: 10 });
      expect(ids(first.points)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(first.next_page_offset).toBe(11);

      const second = await client.scroll(name, { limit: 10, offset: first.next_page_offset ?? null });
      expect(ids(second.points)).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
      expect(second.next_page_offset).toBe(21);

      const last = await client.scroll(name, { limit: 10, offset: second.next_page_offset ?? null });
      expect(ids(last.points)).toEqual([21, 22, 23, 24, 25]);
      expect(last.next_page_offset).toBeNull();

      expect(ids((await client.scroll(name, { limit: 1, offset: 7 })).points)).toEqual([7]);
    });
  });

  it('refuses a scroll limit of 0 as a validation error', async () => {
    await withCollection('limit0', 2, async (name) => {
      expect(await failure(client.scroll(name, { limit: 0 }))).toEqual({
        status: 422,
        message: 'Validation error in JSON body: [limit: value 0 invalid, must be 1 or larger]',
      });
    });
  });

  it('returns only the requested payload keys', async () => {
    await withCollection('with-payload', 2, async (name) => {
      await client.upsert(name, { wait: true, points: [{ id: 1, vector: [1, 0], payload: { a: 1, b: 2 } }] });
      expect((await client.scroll(name, { with_payload: ['a'] })).points[0]?.payload).toEqual({ a: 1 });
      expect((await client.scroll(name, { with_payload: false })).points[0]).toEqual({ id: 1 });
    });
  });

  it('counts the points matching a filter', async () => {
    await withCollection('count', 2, async (name) => {
      await client.upsert(name, {
        wait: true,
        points: [1, 2, 3, 4].map((id) => ({ id, vector: [1, id], payload: { kind: id <= 3 ? 'image' : 'video' } })),
      });
      expect(await client.count(name)).toEqual({ count: 4 });
      expect(await client.count(name, { filter: { must: [{ key: 'kind', match: { value: 'image' } }] } })).toEqual({
        count: 3,
      });
    });
  });
});

describe('filters', () => {
  const points = [
    { id: 1, vector: [1, 0], payload: { kind: 'text', tags: ['a', 'b'], meta: { lang: 'en' }, size: 10 } },
    { id: 2, vector: [1, 1], payload: { kind: 'image', tags: ['b'], meta: { lang: 'fr' }, size: 200 } },
    { id: 3, vector: [0, 1], payload: { kind: 'video', tags: [], meta: { lang: 'en' }, size: 3000 } },
    { id: 4, vector: [1, 2], payload: { kind: 'text', meta: { lang: 'de' } } },
  ];

  async function matching(name: string, filter: Record<string, unknown>): Promise<Array<string | number>> {
    return ids((await client.scroll(name, { filter, limit: 100 })).points);
  }

  it('applies match value, match any, match except, ranges and dotted keys', async () => {
    await withCollection('filters', 2, async (name) => {
      await client.upsert(name, { wait: true, points });
      expect(await matching(name, { must: [{ key: 'kind', match: { value: 'text' } }] })).toEqual([1, 4]);
      expect(await matching(name, { must: [{ key: 'kind', match: { any: ['image', 'video'] } }] })).toEqual([2, 3]);
      // An array matches when any element does.
      expect(await matching(name, { must: [{ key: 'tags', match: { value: 'b' } }] })).toEqual([1, 2]);
      expect(await matching(name, { must: [{ key: 'meta.lang', match: { value: 'en' } }] })).toEqual([1, 3]);
      expect(await matching(name, { must: [{ key: 'size', range: { gte: 100, lt: 3000 } }] })).toEqual([2]);
      // A missing key never satisfies `except`.
      expect(await matching(name, { must: [{ key: 'size', match: { except: [10] } }] })).toEqual([2, 3]);
      expect(await matching(name, { must: [{ has_id: [2, 4] }] })).toEqual([2, 4]);
      expect(await matching(name, { must: [{ is_empty: { key: 'tags' } }] })).toEqual([3, 4]);
    });
  });

  it('combines must_not and nested should clauses', async () => {
    await withCollection('boolean', 2, async (name) => {
      await client.upsert(name, { wait: true, points });
      expect(await matching(name, { must_not: [{ key: 'kind', match: { value: 'text' } }] })).toEqual([2, 3]);
      expect(
        await matching(name, {
          must: [
            {
              should: [
                { key: 'kind', match: { value: 'video' } },
                { key: 'meta.lang', match: { value: 'fr' } },
              ],
            },
          ],
          must_not: [{ key: 'tags', match: { value: 'b' } }],
        }),
      ).toEqual([3]);
      expect(await matching(name, { should: [] })).toEqual([]);
    });
  });
});

describe('vector search', () => {
  const points = [
    { id: 1, vector: [1, 0, 0], payload: { name: 'east' } },
    { id: 2, vector: [0.9, 0.1, 0], payload: { name: 'east-ish' } },
    { id: 3, vector: [0, 1, 0], payload: { name: 'north' } },
    { id: 4, vector: [-1, 0, 0], payload: { name: 'west' } },
  ];

  it('returns the nearest point first with cosine scores', async () => {
    await withCollection('query', 3, async (name) => {
      await client.upsert(name, { wait: true, points });
      const { points: hits } = await client.query(name, { query: [2, 0, 0], limit: 3, with_payload: true });
      expect(ids(hits)).toEqual([1, 2, 3]);
      expect(hits[0]?.score).toBeCloseTo(1, 5);
      expect(hits[1]?.score).toBeCloseTo(0.9 / Math.sqrt(0.82), 5);
      expect(hits[2]?.score).toBeCloseTo(0, 5);
      expect(hits[0]?.payload).toEqual({ name: 'east' });
      expect(hits[0]?.vector).toBeUndefined();
    });
  });

  it('accepts a nearest query with filter, offset and score threshold', async () => {
    await withCollection('nearest', 3, async (name) => {
      await client.upsert(name, { wait: true, points });
      const above = await client.query(name, { query: { nearest: [1, 0, 0] }, score_threshold: 0.5 });
      expect(ids(above.points)).toEqual([1, 2]);
      const filtered = await client.query(name, {
        query: { nearest: [1, 0, 0] },
        filter: { must_not: [{ has_id: [1] }] },
        limit: 1,
        offset: 1,
      });
      expect(ids(filtered.points)).toEqual([3]);
    });
  });

  it('rejects a query vector of the wrong dimension', async () => {
    await withCollection('query-dim', 3, async (name) => {
      expect(await failure(client.query(name, { query: [1, 0] }))).toEqual({
        status: 400,
        message: 'Wrong input: Vector dimension error: expected dim: 3, got 2',
      });
    });
  });

  it('still serves the deprecated search endpoint as a bare list of scored points', async () => {
    await withCollection('search', 3, async (name) => {
      await client.upsert(name, { wait: true, points });
      const hits = await client.search(name, { vector: [0, 1, 0], limit: 1 });
      expect(ids(hits)).toEqual([3]);
      expect(hits[0]?.score).toBeCloseTo(1, 5);
      expect(hits[0]?.payload).toEqual({ name: 'north' });
    });
  });
});

describe('aliases', () => {
  it('switches an alias atomically and resolves it for reads and writes', async () => {
    const blue = uniqueName('blue');
    const green = uniqueName('green');
    const alias = uniqueName('live');
    await client.createCollection(blue, { vectors: { size: 2, distance: 'Cosine' } });
    await client.createCollection(green, { vectors: { size: 2, distance: 'Cosine' } });
    try {
      await client.updateCollectionAliases({
        actions: [{ create_alias: { collection_name: blue, alias_name: alias } }],
      });
      // Writes through the alias land in the collection it points to.
      await client.upsert(alias, { wait: true, points: [{ id: 1, vector: [1, 0] }] });
      expect((await client.count(blue)).count).toBe(1);
      expect(await client.collectionExists(alias)).toEqual({ exists: true });

      await client.upsert(green, {
        wait: true,
        points: [
          { id: 1, vector: [1, 0] },
          { id: 2, vector: [0, 1] },
        ],
      });
      await client.updateCollectionAliases({
        actions: [
          { delete_alias: { alias_name: alias } },
          { create_alias: { collection_name: green, alias_name: alias } },
        ],
      });
      expect((await client.count(alias)).count).toBe(2);
      expect((await client.getCollection(alias)).points_count).toBe(2);
      expect((await client.getCollectionAliases(green)).aliases).toEqual([
        { alias_name: alias, collection_name: green },
      ]);
      expect((await client.getCollectionAliases(blue)).aliases).toEqual([]);
      expect((await client.getAliases()).aliases).toContainEqual({ alias_name: alias, collection_name: green });

      // create_alias alone overwrites an existing alias.
      await client.updateCollectionAliases({
        actions: [{ create_alias: { collection_name: blue, alias_name: alias } }],
      });
      expect((await client.count(alias)).count).toBe(1);
    } finally {
      await client.deleteCollection(blue);
      await client.deleteCollection(green);
    }
    expect((await client.getAliases()).aliases.map((a) => a.alias_name)).not.toContain(alias);
  });

  it('refuses an alias to a collection that does not exist', async () => {
    const missing = uniqueName('missing');
    const error = await failure(
      client.updateCollectionAliases({
        actions: [{ create_alias: { collection_name: missing, alias_name: uniqueName('a') } }],
      }),
    );
    expect(error).toEqual({ status: 404, message: `Not found: Collection \`${missing}\` doesn't exist!` });
  });
});

describe('HTTP edges', () => {
  it('answers malformed JSON with a 400 format error', async () => {
    await withCollection('bad-json', 2, async (name) => {
      const { status, json } = await rawRequest('POST', `/collections/${name}/points/count`, '{"filter": ');
      expect(status).toBe(400);
      expect((json as { status: { error: string } }).status.error).toMatch(/^Format error in JSON body: /);
    });
  });

  it('refuses request bodies larger than 32 MiB', async () => {
    await withCollection('too-big', 2, async (name) => {
      const blob = 'x'.repeat(33 * 1024 * 1024);
      const error = await failure(
        client.upsert(name, { wait: true, points: [{ id: 1, vector: [1, 0], payload: { blob } }] }),
      );
      expect(error.status).toBe(400);
      expect(error.message).toMatch(
        /^Payload error: JSON payload \(\d+ bytes\) is larger than allowed \(limit: 33554432 bytes\)\.$/,
      );
      expect((await client.count(name)).count).toBe(0);
    });
  });

  it('answers 404 for an unknown route', async () => {
    expect((await rawRequest('GET', '/no-such-endpoint')).status).toBe(404);
  });

  it('reports its version at the root', async () => {
    const { status, json } = await rawRequest('GET', '/');
    expect(status).toBe(200);
    expect((json as { version: string }).version).toMatch(/^1\.19\./);
  });
});
