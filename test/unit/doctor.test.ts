/**
 * The doctor's checks over fakes: the answers real servers of this machine cannot give
 * (an old Redis, named vectors, a rate-limited key, a denied listing), and its formatting
 * and masking helpers. The real servers' answers are in test/integration/doctor.test.ts.
 */
import { describe, expect, it } from '@jest/globals';
import { formatDoctor, redactRows, runDoctor } from '../../src/doctor.js';
import { maskUrl, urlPassword } from '../../src/redact.js';
import { formatUsd } from '../../src/doctor/api.js';
import { parseInfo } from '../../src/doctor/redis.js';
import type { CheckRow, DoctorClients, DoctorTarget } from '../../src/doctor/rows.js';
import type { Embedder } from '../../src/embedder.js';
import { EmbeddingApiError } from '../../src/errors.js';
import { resolveModel } from '../../src/models.js';
import { ObjectStoreError } from '../../src/object-store.js';
import type { CollectionLayout } from '../../src/collection-layout.js';

const INFO = (version: string, policy = 'noeviction', aof = '1'): string =>
  `# Server\r\nredis_version:${version}\r\nredis_mode:standalone\r\n\r\n# Memory\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\nmaxmemory_policy:${policy}\r\n\r\n# Persistence\r\naof_enabled:${aof}\r\n`;

const target = (over: Partial<DoctorTarget> = {}): DoctorTarget => ({
  redisUrl: 'redis://127.0.0.1:6379',
  s3Endpoint: 'http://s3.test',
  qdrantUrl: 'http://qdrant.test',
  baseUrl: 'https://api.test',
  bucket: 'b',
  prefix: '',
  collection: 'c',
  model: resolveModel('qwen3-vl-embedding'),
  dimension: 2560,
  api: true,
  timeoutMs: 200,
  ...over,
});

const embedder = (tokens = 1): Embedder => ({
  embed: (req) =>
    Promise.resolve({
      vectors: [new Array<number>(req.dimension).fill(0)],
      types: ['text'],
      usage: { textTokens: tokens, imageTokens: 0, totalTokens: tokens },
      requestId: 'r',
    }),
});

function clients(
  over: Partial<{
    info: () => Promise<string>;
    layout: () => Promise<CollectionLayout | undefined>;
    list: DoctorClients['objects']['listPage'];
    embedder: Embedder | undefined;
  }> = {},
): DoctorClients {
  return {
    redis: { info: over.info ?? (() => Promise.resolve(INFO('7.2.4'))) },
    objects: {
      listPage:
        over.list ??
        (() =>
          Promise.resolve({
            objects: [{ bucket: 'b', key: 'k.txt', etag: 'e', size: 3, lastModified: '2026-01-01T00:00:00.000Z' }],
          })),
      get: () => Promise.resolve({ bytes: new Uint8Array([1]), etag: 'e' }),
    },
    vectors: { describeCollection: over.layout ?? (() => Promise.resolve(undefined)) },
    embedder: 'embedder' in over ? over.embedder : embedder(),
  };
}

const find = (rows: readonly CheckRow[], check: string): CheckRow => {
  const r = rows.find((x) => x.check === check);
  if (!r) throw new Error(`no row ${check}`);
  return r;
};

describe('doctor checks', () => {
  it('fails a Redis older than 6.2 and passes 6.2.0 itself', async () => {
    const old = await runDoctor(clients({ info: () => Promise.resolve(INFO('6.0.16')) }), target());
    expect(find(old, 'redis')).toMatchObject({
      status: 'fail',
      detail: 'Redis 6.0.16 at redis://127.0.0.1:6379: BullMQ needs Redis >= 6.2.0',
      action: 'upgrade Redis to 6.2 or later',
    });
    const min = await runDoctor(clients({ info: () => Promise.resolve(INFO('6.2.0')) }), target());
    expect(find(min, 'redis').status).toBe('ok');
  });

  it('fails a collection with named vectors, or none, as the store refuses to write them', async () => {
    const named = await runDoctor(
      clients({ layout: () => Promise.resolve({ vectors: 'named', names: ['text', 'image'] }) }),
      target(),
    );
    expect(find(named, 'collection')).toEqual({
      check: 'collection',
      status: 'fail',
      detail: '"c" has named vectors (text, image); this tool writes one unnamed vector a point',
      action: 'use another --collection',
      facts: { exists: true },
    });
    const none = await runDoctor(clients({ layout: () => Promise.resolve({ vectors: 'none' }) }), target());
    expect(find(none, 'collection')).toMatchObject({
      status: 'fail',
      detail: '"c" has no dense vector; this tool writes one unnamed vector a point',
    });
  });

  it('names no --dimension when the model cannot make the size found', async () => {
    const rows = await runDoctor(
      clients({ layout: () => Promise.resolve({ vectors: 'unnamed', size: 1000, distance: 'Cosine' }) }),
      target(),
    );
    expect(find(rows, 'collection').action).toBe('use another --collection, or --mode rebuild');
  });

  it('warns on a rate-limited key and fails a missing key, a missing model and an unreachable API', async () => {
    const throttled: Embedder = {
      embed: () =>
        Promise.reject(
          new EmbeddingApiError({
            status: 429,
            code: 'Throttling.RateQuota',
            message: 'Requests rate limit exceeded',
            requestId: 'x',
          }),
        ),
    };
    expect(find(await runDoctor(clients({ embedder: throttled }), target()), 'api key')).toMatchObject({
      status: 'warn',
      detail: 'refused: 429 Throttling.RateQuota: Requests rate limit exceeded',
    });
    expect(find(await runDoctor(clients({ embedder: undefined }), target()), 'api key')).toEqual({
      check: 'api key',
      status: 'fail',
      detail: 'DASHSCOPE_API_KEY is not set',
      action: 'set DASHSCOPE_API_KEY (every worker needs it)',
    });
    const missing: Embedder = {
      embed: () =>
        Promise.reject(new EmbeddingApiError({ status: 404, code: 'ModelNotFound', message: 'Model not exist.' })),
    };
    expect(find(await runDoctor(clients({ embedder: missing }), target()), 'api key')).toMatchObject({
      status: 'fail',
      action: 'check that qwen3-vl-embedding is offered at https://api.test (the region of DASHSCOPE_BASE_URL)',
    });
    const hung: Embedder = { embed: () => new Promise(() => {}) };
    expect(find(await runDoctor(clients({ embedder: hung }), target({ timeoutMs: 50 })), 'api key')).toMatchObject({
      status: 'fail',
      detail: 'no answer within 0.1 s from https://api.test',
    });
  });

  it('prices the probe from the catalog, free models included', async () => {
    const rows = await runDoctor(
      clients(),
      target({ model: resolveModel('multimodal-embedding-v1'), dimension: 1024 }),
    );
    expect(find(rows, 'api key').detail).toBe(
      'multimodal-embedding-v1 at https://api.test embedded "ping": 1 text token, $0 (free in the catalog)',
    );
  });

  it('fails a listing the credentials may not make', async () => {
    const denied = (): Promise<never> =>
      Promise.reject(
        new ObjectStoreError('fatal', 'AccessDenied', 'ListObjectsV2 s3://b/ failed: AccessDenied 403: Access Denied.'),
      );
    const rows = await runDoctor(clients({ list: denied }), target());
    expect(rows.slice(3, 5)).toEqual([
      {
        check: 'bucket',
        status: 'fail',
        detail: 'refused: AccessDenied',
        action: 'check the credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE ...) and that they allow s3:ListBucket on b',
      },
      { check: 'object read', status: 'skip', detail: 'not checked: the bucket could not be listed', action: '' },
    ]);
  });
});

describe('doctor helpers', () => {
  it('reads INFO lines', () => {
    expect(parseInfo(INFO('7.0.15', 'allkeys-lru', '0'))).toEqual(
      new Map([
        ['redis_version', '7.0.15'],
        ['redis_mode', 'standalone'],
        ['maxmemory', '0'],
        ['maxmemory_human', '0B'],
        ['maxmemory_policy', 'allkeys-lru'],
        ['aof_enabled', '0'],
      ]),
    );
  });

  it('prints dollars without an exponent', () => {
    expect([0, 1e-7, 9e-8, 0.000258, 0.0123, 1.5, 12].map(formatUsd)).toEqual([
      '$0',
      '$0.0000001',
      '$0.00000009',
      '$0.00026',
      '$0.012',
      '$1.5',
      '$12',
    ]);
  });

  it('masks passwords in URLs and URL lists, and redacts secrets anywhere in a row', () => {
    expect(maskUrl('redis://:s3cret@10.0.0.1:6379')).toBe('redis://:***@10.0.0.1:6379');
    expect(maskUrl('rediss://app:p%40ss@cache.example:6380/2')).toBe('rediss://app:***@cache.example:6380/2');
    expect(maskUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
    expect(maskUrl('http://u:pw@qdrant.example:6333')).toBe('http://u:***@qdrant.example:6333');
    expect(maskUrl('redis://:a@n1:7000,redis://:a@n2:7001')).toBe('redis://:***@n1:7000,redis://:***@n2:7001');
    expect(urlPassword('rediss://app:p%40ss@cache.example:6380')).toEqual(['p%40ss', 'p@ss']);
    const rows = redactRows(
      [{ check: 'x', status: 'fail', detail: 'echoed sk-secret-1234 and p@ss', action: 'sk-secret-1234' }],
      ['sk-secret-1234', 'p@ss', undefined],
    );
    expect(rows).toEqual([{ check: 'x', status: 'fail', detail: 'echoed *** and ***', action: '***' }]);
  });

  it('formats rows as a table with what to do under the rows that are not ok', () => {
    const text = formatDoctor([
      { check: 'redis', status: 'ok', detail: 'Redis 7.0.15', action: '' },
      { check: 'redis eviction', status: 'fail', detail: 'allkeys-lru', action: 'set noeviction' },
    ]);
    expect(text).toBe(
      [
        'ok    redis           Redis 7.0.15',
        'fail  redis eviction  allkeys-lru',
        '                      -> set noeviction',
        '1 ok, 0 warn, 1 fail, 0 skipped: not ready: fix the fail rows',
        '',
      ].join('\n'),
    );
  });
});
