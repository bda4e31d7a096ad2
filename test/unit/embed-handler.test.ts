/**
 * The embed handler over fakes of its narrow interfaces (object store, embedder, vector
 * store, run recorder): the whole flow of one job, fetch -> prepare -> assemble -> plan ->
 * embed -> upsert -> record, with values the test states. The real servers' version of
 * these paths is in the integration tests (pipeline, reliability, paid-once).
 */
import { describe, expect, it } from '@jest/globals';
import { createEmbedHandler } from '../../jobs/embed-handler.js';
import type { EmbedHandlerDeps, RunRecorder } from '../../jobs/embed-handler.js';
import type { EmbedJobData, ObjectTuple } from '../../src/embed-job.js';
import type { EmbedRequest, EmbedResult, Embedder } from '../../src/embedder.js';
import { EmbeddingApiError } from '../../src/errors.js';
import { pointId } from '../../src/ids.js';
import { ObjectStoreError } from '../../src/object-store.js';
import type { ObjectStore } from '../../src/object-store.js';
import type { ItemOutcome } from '../../src/runs.js';
import { qwenTokens } from '../../src/tokens.js';
import type { PointRecord, StoredPoint, VectorStore } from '../../src/vector-store.js';

const BUCKET = 'b';
const DIM = 4;
const T0 = Date.parse('2026-11-30T22:00:00Z');

/** A version written after the scan listed the object: what the store answers for it now. */
interface NewVersion {
  readonly text: string;
  readonly etag: string;
  readonly lastModified: string;
}

/**
 * Objects by key; a key absent from the map was deleted after the scan; DENIED is refused by
 * the store (403 AccessDenied); a NewVersion changed after the scan.
 */
const DENIED = Symbol('denied');
function fakeStore(objects: Record<string, string | NewVersion | typeof DENIED>): ObjectStore {
  return {
    listPage: () => Promise.reject(new Error('the handler does not list')),
    head: () => Promise.reject(new Error('the handler does not head')),
    presign: () => Promise.reject(new Error('texts are never presigned')),
    get: (_bucket, key, range) => {
      const object = objects[key];
      if (object === undefined)
        return Promise.reject(
          new ObjectStoreError('gone', 'NoSuchKey', `GetObject s3://b/${key} failed: NoSuchKey 404`),
        );
      if (object === DENIED)
        return Promise.reject(
          new ObjectStoreError(
            'fatal',
            'AccessDenied',
            `GetObject s3://b/${key} failed: AccessDenied 403: Access Denied`,
          ),
        );
      const version = typeof object === 'string' ? undefined : object;
      const bytes = new TextEncoder().encode(version?.text ?? (object as string));
      const part = range ? bytes.subarray(range[0], range[1] + 1) : bytes;
      return Promise.resolve(
        version
          ? { bytes: part, etag: version.etag, size: bytes.length, lastModified: version.lastModified }
          : { bytes: part, etag: `e-${key}`, size: bytes.length, lastModified: new Date(T0).toISOString() },
      );
    },
  };
}

/** Vectors from the text's length; refuses any text containing "refuse-me" with a 400 naming the input. */
function fakeEmbedder(): Embedder & { requests: EmbedRequest[] } {
  const requests: EmbedRequest[] = [];
  return {
    requests,
    embed(request): Promise<EmbedResult> {
      requests.push(request);
      const texts = request.contents.map((c) => (typeof c === 'string' ? c : (c.text ?? '')));
      if (texts.some((t) => t.includes('refuse-me'))) {
        return Promise.reject(
          new EmbeddingApiError({
            status: 400,
            code: 'InvalidParameter',
            message: 'contents[0].text contains a word the service refuses',
            requestId: `r${requests.length}`,
          }),
        );
      }
      return Promise.resolve({
        vectors: texts.map((t) => [t.length, 1, 0, 0]),
        types: texts.map(() => 'text' as const),
        usage: { textTokens: 10 * texts.length, imageTokens: 0, totalTokens: 10 * texts.length },
        requestId: `r${requests.length}`,
      });
    },
  };
}

function fakeVectors(): VectorStore & { points: Map<string, PointRecord> } {
  const points = new Map<string, PointRecord>();
  const unused = (): Promise<never> => Promise.reject(new Error('not used by the handler'));
  return {
    points,
    ensureCollection: () => Promise.resolve(),
    upsert: (_c, records) => (records.forEach((r) => points.set(r.id, r)), Promise.resolve()),
    retrieve: (_c, ids): Promise<StoredPoint[]> =>
      Promise.resolve(ids.flatMap((id) => (points.has(id) ? [{ id, payload: points.get(id)!.payload }] : []))),
    delete: (_c, ids) => (ids.forEach((id) => points.delete(id)), Promise.resolve()),
    scroll: unused,
    count: unused,
    scrollIndexedSince: unused,
    aliasTarget: unused,
    collectionExists: unused,
    switchAlias: unused,
    deleteCollection: unused,
    search: unused,
  };
}

function fakeRuns(): RunRecorder & { items: Map<string, ItemOutcome>; requests: number } {
  const items = new Map<string, ItemOutcome>();
  const self = {
    items,
    requests: 0,
    addUsage: (_runId: string, usage: { requests: number }) => ((self.requests += usage.requests), Promise.resolve()),
    recordItems: (_runId: string, outcomes: ReadonlyMap<string, ItemOutcome>) => (
      outcomes.forEach((o, k) => items.set(k, o)),
      Promise.resolve()
    ),
  };
  return self as unknown as RunRecorder & { items: Map<string, ItemOutcome>; requests: number };
}

const quiet = { info: () => {}, warn: () => {} };

function job(keys: string[], runId = 'run-1'): { data: EmbedJobData } {
  const objects = keys.map((k, i): ObjectTuple => [k, `e-${k}`, 20, T0 + i, 't']);
  return {
    data: {
      v: 1,
      runId,
      bucket: BUCKET,
      settings: {
        collection: 'c',
        model: 'qwen3-vl-embedding',
        dimension: DIM,
        chunkOverlap: 0,
        imageMode: 'inline',
        maxBodyBytes: 6_000_000,
      },
      objects,
    },
  };
}

function setup(objects: Record<string, string | NewVersion | typeof DENIED>): {
  deps: EmbedHandlerDeps;
  embedder: ReturnType<typeof fakeEmbedder>;
  vectors: ReturnType<typeof fakeVectors>;
  runs: ReturnType<typeof fakeRuns>;
} {
  const embedder = fakeEmbedder();
  const vectors = fakeVectors();
  const runs = fakeRuns();
  const deps: EmbedHandlerDeps = {
    store: fakeStore(objects),
    embedder,
    vectors,
    tokens: qwenTokens,
    runs,
    log: quiet,
    apiAttempts: 1,
    apiBackoffMs: 1,
    now: () => new Date('2026-12-01T01:00:00Z'),
  };
  return { deps, embedder, vectors, runs };
}

describe('the embed handler against fakes', () => {
  it('embeds the texts in one request, writes one point each, and records the object that vanished', async () => {
    const { deps, embedder, vectors, runs } = setup({ 'a.txt': 'first text', 'b.txt': 'second, longer text' });
    const result = await createEmbedHandler(deps)(job(['a.txt', 'b.txt', 'gone.txt']));
    expect(result).toEqual({ status: 'done', objects: 3, indexed: 2, skipped: 1, failed: 0, points: 2 });
    expect(embedder.requests.map((r) => r.contents)).toEqual([['first text', 'second, longer text']]);
    expect([...vectors.points.keys()].sort()).toEqual(
      [pointId(BUCKET, 'a.txt', 0), pointId(BUCKET, 'b.txt', 0)].sort(),
    );
    const a = vectors.points.get(pointId(BUCKET, 'a.txt', 0))!;
    expect({
      vector: a.vector,
      key: a.payload.key,
      etag: a.payload.etag,
      run: a.payload.run_id,
      chunk: a.payload.chunk,
      count: a.payload.chunk_count,
      at: a.payload.indexed_at,
    }).toEqual({
      vector: [10, 1, 0, 0],
      key: 'a.txt',
      etag: 'e-a.txt',
      run: 'run-1',
      chunk: 0,
      count: 1,
      at: '2026-12-01T01:00:00.000Z',
    });
    expect(Object.fromEntries(runs.items)).toEqual({
      'gone.txt': { status: 'skipped', code: 'vanished', reason: 'the object was deleted after the scan' },
    });
    expect(runs.requests).toBe(1);
  });

  it('buys nothing again when the same run redoes the job (a crash or a drain)', async () => {
    const { deps, embedder } = setup({ 'a.txt': 'first text', 'b.txt': 'second, longer text' });
    const handle = createEmbedHandler(deps);
    await handle(job(['a.txt', 'b.txt']));
    const again = await handle(job(['a.txt', 'b.txt']));
    expect({ again, requests: embedder.requests.length }).toEqual({
      again: { status: 'done', objects: 2, indexed: 2, skipped: 0, failed: 0, points: 2 },
      requests: 1,
    });
  });

  it("isolates the input the API refuses by halving its request: the other is indexed, the refused one fails with the provider's code and message", async () => {
    const { deps, embedder, vectors, runs } = setup({ 'ok.txt': 'a fine text', 'bad.txt': 'please refuse-me' });
    const result = await createEmbedHandler(deps)(job(['ok.txt', 'bad.txt']));
    expect(result).toEqual({ status: 'done', objects: 2, indexed: 1, skipped: 0, failed: 1, points: 1 });
    // the pair, then each half alone
    expect(embedder.requests.map((r) => r.contents.length)).toEqual([2, 1, 1]);
    expect([...vectors.points.keys()]).toEqual([pointId(BUCKET, 'ok.txt', 0)]);
    expect(runs.items.get('bad.txt')).toEqual({
      status: 'failed',
      code: 'InvalidParameter',
      reason: 'contents[0].text contains a word the service refuses',
      object: ['bad.txt', 'e-bad.txt', 20, T0 + 1, 't'],
    });
  });

  it("removes the chunks an object's old version had beyond its new count", async () => {
    const { deps, vectors } = setup({ 'a.txt': 'now short' });
    // the old version had three chunks, indexed by an earlier run
    for (let chunk = 0; chunk < 3; chunk++) {
      vectors.points.set(pointId(BUCKET, 'a.txt', chunk), {
        id: pointId(BUCKET, 'a.txt', chunk),
        vector: [0, 0, 0, 1],
        payload: {
          bucket: BUCKET,
          key: 'a.txt',
          etag: 'old',
          size: 9000,
          last_modified: '',
          modality: 'text',
          chunk,
          chunk_count: 3,
          model: 'qwen3-vl-embedding',
          dimension: DIM,
          params_hash: 'old',
          indexed_at: '',
          run_id: 'run-0',
        },
      });
    }
    await createEmbedHandler(deps)(job(['a.txt']));
    expect([...vectors.points.keys()]).toEqual([pointId(BUCKET, 'a.txt', 0)]);
    expect(vectors.points.get(pointId(BUCKET, 'a.txt', 0))!.payload.etag).toBe('e-a.txt');
  });

  it('describes the version it embedded: an object changed after the scan gets the new ETag, size and time', async () => {
    const changed = { text: 'rewritten after the listing', etag: 'e-new', lastModified: '2026-12-01T00:30:00.000Z' };
    const { deps, vectors } = setup({ 'same.txt': 'as listed', 'changed.txt': changed });
    await createEmbedHandler(deps)(job(['same.txt', 'changed.txt']));
    const facts = (key: string): unknown => {
      const p = vectors.points.get(pointId(BUCKET, key, 0))!.payload;
      return [p.etag, p.size, p.last_modified];
    };
    // the job's tuples say 20 bytes at T0 + i (what the scan listed)
    expect([facts('same.txt'), facts('changed.txt')]).toEqual([
      ['e-same.txt', 20, new Date(T0).toISOString()],
      ['e-new', 27, '2026-12-01T00:30:00.000Z'],
    ]);
  });

  it("fails an object the store refuses to hand out with the store's reason, and indexes its neighbours", async () => {
    const { deps, vectors, runs } = setup({ 'ok.txt': 'a readable text', 'locked.txt': DENIED });
    const result = await createEmbedHandler(deps)(job(['ok.txt', 'locked.txt']));
    expect(result).toEqual({ status: 'done', objects: 2, indexed: 1, skipped: 0, failed: 1, points: 1 });
    expect([...vectors.points.keys()]).toEqual([pointId(BUCKET, 'ok.txt', 0)]);
    // the object as the job held it rides along, so retry-failed can queue it again
    expect(runs.items.get('locked.txt')).toEqual({
      status: 'failed',
      code: 'access-denied',
      reason: 'GetObject s3://b/locked.txt failed: AccessDenied 403: Access Denied',
      object: ['locked.txt', 'e-locked.txt', 20, T0 + 1, 't'],
    });
  });
});
