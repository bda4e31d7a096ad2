/**
 * `mm-ingest doctor` as an operator runs it, a real process against real servers: Redis
 * servers of the test's own (noeviction with AOF, allkeys-lru, AOF off, a password),
 * MinIO, the Qdrant stand-in (or QDRANT_URL) and the API simulator. Every misconfiguration
 * is produced for real, and each run's rows are compared whole: check, status, detail and
 * what to do, with the exit code.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { runCli, startPipelineEnv, TEST_API_KEY } from '../support/pipeline.js';
import type { CliResult, PipelineEnv } from '../support/pipeline.js';
import { freePort } from '../support/ports.js';
import { startRedisServer } from '../support/redis-server.js';
import type { RedisServerForTest } from '../support/redis-server.js';
import { createBucket, putObject } from '../support/s3.js';

const MODEL = 'qwen3-vl-embedding';
const TEST_TIMEOUT = 120_000;

interface Row {
  check: string;
  status: string;
  detail: string;
  action: string;
}

interface JsonOutput {
  ok: boolean;
  counts: Record<string, number>;
  checks: (Row & { facts?: Record<string, unknown> })[];
}

let env: PipelineEnv;
let bucket: string;
let healthyRedis: RedisServerForTest;
let redisVersion: string;
const collections: string[] = [];

/** A collection name of this test's own, deleted afterwards. */
function collectionName(): string {
  const name = `doctor-${randomUUID().slice(0, 8)}`;
  collections.push(name);
  return name;
}

async function qdrant(method: string, path: string, body?: unknown): Promise<void> {
  const apiKey = env.env.QDRANT_API_KEY;
  const res = await fetch(`${env.qdrantUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(apiKey ? { 'api-key': apiKey } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  if (!res.ok && !(method === 'DELETE' && res.status === 404))
    throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
}

async function doctor(args: readonly string[], overrides: NodeJS.ProcessEnv = {}): Promise<CliResult & { ms: number }> {
  const started = Date.now();
  const result = await runCli(['doctor', ...args], {
    ...env.env,
    REDIS_URL: healthyRedis.url,
    ALLOW_PRIVATE_MEDIA_URLS: 'true',
    ...overrides,
  });
  return { ...result, ms: Date.now() - started };
}

async function doctorJson(
  args: readonly string[],
  overrides: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; out: JsonOutput; raw: CliResult; ms: number }> {
  const raw = await doctor([...args, '--json'], overrides);
  try {
    return { code: raw.code, out: JSON.parse(raw.stdout) as JsonOutput, raw, ms: raw.ms };
  } catch {
    throw new Error(`doctor --json printed no JSON (exit ${raw.code}):\n${raw.stdout}\n${raw.stderr}`);
  }
}

const rowsOf = (out: JsonOutput): Row[] =>
  out.checks.map(({ check, status, detail, action }) => ({ check, status, detail, action }));
const ok = (check: string, detail: string): Row => ({ check, status: 'ok', detail, action: '' });

// The rows of a healthy setup, for the parts a scenario leaves healthy.
const redisRows = (url: string): Row[] => [
  ok('redis', `Redis ${redisVersion} at ${url}`),
  ok('redis eviction', 'maxmemory-policy noeviction, no maxmemory'),
  ok('redis persistence', 'AOF on'),
];
const bucketRows = (): Row[] => [
  ok('bucket', `s3://${bucket}/ lists (3 objects on the first page)`),
  ok('object read', 'read 1 byte of docs/a.txt'),
];
const qdrantRows = (collection: string): Row[] => [
  ok('qdrant', `answers at ${env.qdrantUrl}`),
  ok('collection', `"${collection}" does not exist yet: index creates it (2560-dim, Cosine, one unnamed vector)`),
];
// the simulator runs on this machine and can reach MinIO: the override says so (media-urls.ts)
const mediaRow = (): Row =>
  ok(
    'media urls',
    `S3_ENDPOINT ${env.env.S3_ENDPOINT} is a loopback or private address, and ALLOW_PRIVATE_MEDIA_URLS=true: its presigned URLs are sent (the API must reach it)`,
  );
const apiRow = (): Row =>
  ok('api key', `${MODEL} at ${env.sim.url} embedded "ping": 1 text token, $0.0000001 ($0.1 per million text tokens)`);

/** A TCP server that accepts connections and never answers: a hung service. */
async function silentServer(): Promise<{ url: (scheme: string) => string; close(): Promise<void> }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((s) => void sockets.push(s));
  // port 0: the OS picks a free one for this very listener (no free-then-reuse race)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (scheme) => `${scheme}://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

beforeAll(async () => {
  env = await startPipelineEnv();
  healthyRedis = await startRedisServer();
  const probe = new Redis(healthyRedis.url);
  redisVersion = /redis_version:(\S+)/.exec(await probe.info('server'))?.[1] ?? '?';
  await probe.quit();
  bucket = `doctor-${randomUUID().slice(0, 8)}`;
  await createBucket(env.s3client, bucket);
  // a directory marker first in key order: the read check must pick a non-empty object
  await putObject(env.s3client, bucket, 'docs/', new Uint8Array(0));
  await putObject(env.s3client, bucket, 'docs/a.txt', 'a first text');
  await putObject(env.s3client, bucket, 'docs/b.txt', 'a second text');
}, TEST_TIMEOUT);

afterAll(async () => {
  for (const c of collections) await qdrant('DELETE', `/collections/${c}`).catch(() => undefined);
  await healthyRedis?.close();
  await env?.close();
}, TEST_TIMEOUT);

describe('mm-ingest doctor', () => {
  it(
    'passes every check on a healthy setup, prints the table and exits 0',
    async () => {
      const collection = collectionName();
      const before = env.sim.stats();
      const r = await doctor(['--bucket', bucket, '--collection', collection, '--model', MODEL]);
      const width = 'redis persistence'.length;
      const line = (status: string, check: string, detail: string): string =>
        `${status.padEnd(4)}  ${check.padEnd(width)}  ${detail}`;
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
        code: 0,
        stdout: [
          line('ok', 'redis', `Redis ${redisVersion} at ${healthyRedis.url}`),
          line('ok', 'redis eviction', 'maxmemory-policy noeviction, no maxmemory'),
          line('ok', 'redis persistence', 'AOF on'),
          line('ok', 'bucket', `s3://${bucket}/ lists (3 objects on the first page)`),
          line('ok', 'object read', 'read 1 byte of docs/a.txt'),
          line('ok', 'qdrant', `answers at ${env.qdrantUrl}`),
          line(
            'ok',
            'collection',
            `"${collection}" does not exist yet: index creates it (2560-dim, Cosine, one unnamed vector)`,
          ),
          line(
            'ok',
            'api key',
            `${MODEL} at ${env.sim.url} embedded "ping": 1 text token, $0.0000001 ($0.1 per million text tokens)`,
          ),
          line(
            'ok',
            'media urls',
            `S3_ENDPOINT ${env.env.S3_ENDPOINT} is a loopback or private address, and ALLOW_PRIVATE_MEDIA_URLS=true: its presigned URLs are sent (the API must reach it)`,
          ),
          '9 ok, 0 warn, 0 fail, 0 skipped: ready',
          '',
        ].join('\n'),
        stderr: '',
      });
      // exactly one request was bought, of one text token; the collection was not created
      const after = env.sim.stats();
      expect({
        requests: after.requests - before.requests,
        accepted: after.accepted - before.accepted,
        textTokens: after.textTokens - before.textTokens,
      }).toEqual({ requests: 1, accepted: 1, textTokens: 1 });
      const described = await fetch(`${env.qdrantUrl}/collections/${collection}`, {
        headers: env.env.QDRANT_API_KEY ? { 'api-key': env.env.QDRANT_API_KEY } : {},
      });
      expect(described.status).toBe(404);
    },
    TEST_TIMEOUT,
  );

  it(
    'says the same in --json, with what it measured',
    async () => {
      const collection = collectionName();
      await qdrant('PUT', `/collections/${collection}`, { vectors: { size: 1024, distance: 'Cosine' } });
      const { code, out } = await doctorJson([
        '--bucket',
        bucket,
        '--prefix',
        'docs/',
        '--collection',
        collection,
        '--model',
        MODEL,
        '--dimension',
        '1024',
      ]);
      expect(code).toBe(0);
      expect(out.ok).toBe(true);
      expect(out.counts).toEqual({ ok: 9, warn: 0, fail: 0, skip: 0 });
      expect(rowsOf(out)).toEqual([
        ...redisRows(healthyRedis.url),
        ok('bucket', `s3://${bucket}/docs/ lists (3 objects on the first page)`),
        ok('object read', 'read 1 byte of docs/a.txt'),
        ok('qdrant', `answers at ${env.qdrantUrl}`),
        ok('collection', `"${collection}" holds 1024-dim Cosine vectors, as ${MODEL} makes`),
        apiRow(),
        mediaRow(),
      ]);
      expect(out.checks.map((c) => c.facts ?? null)).toEqual([
        { version: redisVersion },
        { maxmemoryPolicy: 'noeviction' },
        { aof: true },
        { listed: 3 },
        { key: 'docs/a.txt' },
        null,
        { exists: true, size: 1024, distance: 'Cosine' },
        { textTokens: 1, costUsd: 1e-7 },
        null,
      ]);
    },
    TEST_TIMEOUT,
  );

  it(
    'fails a Redis whose maxmemory-policy is allkeys-lru, and exits 1',
    async () => {
      const lru = await startRedisServer({ extraArgs: ['--maxmemory-policy', 'allkeys-lru', '--maxmemory', '100mb'] });
      try {
        const collection = collectionName();
        const { code, out } = await doctorJson(['--bucket', bucket, '--collection', collection, '--model', MODEL], {
          REDIS_URL: lru.url,
        });
        expect(code).toBe(1);
        expect(rowsOf(out)).toEqual([
          ok('redis', `Redis ${redisVersion} at ${lru.url}`),
          {
            check: 'redis eviction',
            status: 'fail',
            detail:
              "maxmemory-policy allkeys-lru (maxmemory 100.00M): under memory pressure Redis deletes keys, queued jobs and BullMQ's own among them",
            action:
              "set maxmemory-policy noeviction (redis-cli CONFIG SET maxmemory-policy noeviction, and in redis.conf or the managed service's parameters)",
          },
          ok('redis persistence', 'AOF on'),
          ...bucketRows(),
          ...qdrantRows(collection),
          apiRow(),
          mediaRow(),
        ]);
      } finally {
        await lru.close();
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'warns about a Redis without AOF, and still exits 0',
    async () => {
      const volatile = await startRedisServer({ extraArgs: ['--appendonly', 'no'] });
      try {
        const collection = collectionName();
        const { code, out } = await doctorJson(['--bucket', bucket, '--collection', collection, '--model', MODEL], {
          REDIS_URL: volatile.url,
        });
        expect(code).toBe(0);
        expect(out.counts).toEqual({ ok: 8, warn: 1, fail: 0, skip: 0 });
        expect(rowsOf(out)).toEqual([
          ok('redis', `Redis ${redisVersion} at ${volatile.url}`),
          ok('redis eviction', 'maxmemory-policy noeviction, no maxmemory'),
          {
            check: 'redis persistence',
            status: 'warn',
            detail: 'AOF off: queued jobs and run records die with a Redis restart',
            action:
              "turn on AOF: redis-cli CONFIG SET appendonly yes, and appendonly yes in redis.conf (or the managed service's persistence setting)",
          },
          ...bucketRows(),
          ...qdrantRows(collection),
          apiRow(),
          mediaRow(),
        ]);
      } finally {
        await volatile.close();
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'masks the password of the Redis URL, and fails a wrong one',
    async () => {
      const locked = await startRedisServer({ extraArgs: ['--requirepass', 'redis-pass-7f3a'] });
      try {
        const collection = collectionName();
        const url = `redis://:redis-pass-7f3a@127.0.0.1:${locked.port}`;
        const right = await doctorJson(['--bucket', bucket, '--collection', collection, '--model', MODEL, '--no-api'], {
          REDIS_URL: url,
        });
        expect(right.code).toBe(0);
        expect(rowsOf(right.out).slice(0, 3)).toEqual(redisRows(`redis://:***@127.0.0.1:${locked.port}`));
        const wrong = await doctorJson(['--bucket', bucket, '--collection', collection, '--model', MODEL, '--no-api'], {
          REDIS_URL: `redis://:not-the-pass-91c2@127.0.0.1:${locked.port}`,
        });
        expect(wrong.code).toBe(1);
        expect(rowsOf(wrong.out).slice(0, 3)).toEqual([
          {
            check: 'redis',
            status: 'fail',
            detail: `redis://:***@127.0.0.1:${locked.port}: WRONGPASS invalid username-password pair or user is disabled.`,
            action: 'start Redis, or fix REDIS_URL / --redis-url (and its password)',
          },
          { check: 'redis eviction', status: 'skip', detail: 'not checked: Redis did not answer', action: '' },
          { check: 'redis persistence', status: 'skip', detail: 'not checked: Redis did not answer', action: '' },
        ]);
        for (const r of [right.raw, wrong.raw]) {
          expect(r.stdout + r.stderr).not.toContain('redis-pass-7f3a');
          expect(r.stdout + r.stderr).not.toContain('not-the-pass-91c2');
          expect(r.stdout + r.stderr).not.toContain(TEST_API_KEY);
        }
      } finally {
        await locked.close();
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'fails a bucket that does not exist (MinIO: NoSuchBucket) and skips the read',
    async () => {
      const collection = collectionName();
      const { code, out } = await doctorJson([
        '--bucket',
        'no-such-bucket-doctor',
        '--collection',
        collection,
        '--model',
        MODEL,
      ]);
      expect(code).toBe(1);
      expect(rowsOf(out)).toEqual([
        ...redisRows(healthyRedis.url),
        {
          check: 'bucket',
          status: 'fail',
          detail: `bucket "no-such-bucket-doctor" does not exist at ${env.s3.endpoint} (NoSuchBucket)`,
          action: 'check --bucket, S3_ENDPOINT and AWS_REGION',
        },
        { check: 'object read', status: 'skip', detail: 'not checked: the bucket could not be listed', action: '' },
        ...qdrantRows(collection),
        apiRow(),
        mediaRow(),
      ]);
    },
    TEST_TIMEOUT,
  );

  it(
    'warns about a prefix with nothing under it',
    async () => {
      const collection = collectionName();
      const { code, out } = await doctorJson([
        '--bucket',
        bucket,
        '--prefix',
        'Docs/',
        '--collection',
        collection,
        '--model',
        MODEL,
        '--no-api',
      ]);
      expect(code).toBe(0);
      expect(rowsOf(out).slice(3, 5)).toEqual([
        {
          check: 'bucket',
          status: 'warn',
          detail: `s3://${bucket}/Docs/ lists no object: a run would index nothing`,
          action: 'check --prefix (keys are case-sensitive and have no leading /)',
        },
        { check: 'object read', status: 'skip', detail: 'not checked: no object to read', action: '' },
      ]);
    },
    TEST_TIMEOUT,
  );

  it(
    'fails a collection of another size, naming the dimension that fits',
    async () => {
      const collection = collectionName();
      await qdrant('PUT', `/collections/${collection}`, { vectors: { size: 1024, distance: 'Cosine' } });
      const { code, out } = await doctorJson(['--bucket', bucket, '--collection', collection, '--model', MODEL]);
      expect(code).toBe(1);
      expect(rowsOf(out)).toEqual([
        ...redisRows(healthyRedis.url),
        ...bucketRows(),
        ok('qdrant', `answers at ${env.qdrantUrl}`),
        {
          check: 'collection',
          status: 'fail',
          detail: `"${collection}" holds 1024-dim vectors; ${MODEL} at dimension 2560 makes 2560-dim vectors`,
          action: `use --dimension 1024 (${MODEL} takes it), another --collection, or --mode rebuild`,
        },
        apiRow(),
        mediaRow(),
      ]);
    },
    TEST_TIMEOUT,
  );

  it(
    'fails a collection of the right size with another distance, which index refuses',
    async () => {
      const collection = collectionName();
      await qdrant('PUT', `/collections/${collection}`, { vectors: { size: 256, distance: 'Dot' } });
      const { code, out } = await doctorJson([
        '--bucket',
        bucket,
        '--collection',
        collection,
        '--model',
        MODEL,
        '--dimension',
        '256',
        '--no-api',
      ]);
      expect(code).toBe(1);
      expect(rowsOf(out).slice(5)).toEqual([
        ok('qdrant', `answers at ${env.qdrantUrl}`),
        {
          check: 'collection',
          status: 'fail',
          detail: `"${collection}" holds 256-dim vectors with Dot distance; this tool writes Cosine vectors (index refuses the collection)`,
          action: 'use another --collection for Cosine',
        },
        { check: 'api key', status: 'skip', detail: 'not checked (--no-api): no request sent', action: '' },
        mediaRow(),
      ]);
    },
    TEST_TIMEOUT,
  );

  it(
    'fails a wrong API key (401 InvalidApiKey) without printing it',
    async () => {
      const collection = collectionName();
      const wrongKey = 'sk-wrong-key-0000000000000000';
      const { code, out, raw } = await doctorJson(['--bucket', bucket, '--collection', collection, '--model', MODEL], {
        DASHSCOPE_API_KEY: wrongKey,
      });
      expect(code).toBe(1);
      expect(rowsOf(out)).toEqual([
        ...redisRows(healthyRedis.url),
        ...bucketRows(),
        ...qdrantRows(collection),
        {
          check: 'api key',
          status: 'fail',
          detail: 'refused: 401 InvalidApiKey: Invalid API-key provided.',
          action:
            'check DASHSCOPE_API_KEY; keys belong to one region (Beijing https://dashscope.aliyuncs.com, Singapore https://dashscope-intl.aliyuncs.com): match DASHSCOPE_BASE_URL',
        },
        mediaRow(),
      ]);
      expect(raw.stdout + raw.stderr).not.toContain(wrongKey);
    },
    TEST_TIMEOUT,
  );

  it(
    'sends nothing to the API with --no-api',
    async () => {
      const collection = collectionName();
      const before = env.sim.stats().requests;
      const { code, out } = await doctorJson([
        '--bucket',
        bucket,
        '--collection',
        collection,
        '--model',
        MODEL,
        '--no-api',
      ]);
      expect(code).toBe(0);
      expect(rowsOf(out)).toEqual([
        ...redisRows(healthyRedis.url),
        ...bucketRows(),
        ...qdrantRows(collection),
        { check: 'api key', status: 'skip', detail: 'not checked (--no-api): no request sent', action: '' },
        mediaRow(),
      ]);
      expect(env.sim.stats().requests).toBe(before);
    },
    TEST_TIMEOUT,
  );

  it(
    'fails unreachable Redis and Qdrant (nothing listening) quickly, without a stack trace',
    async () => {
      const redisPort = await freePort();
      const qdrantPort = await freePort();
      const collection = collectionName();
      const r = await doctorJson(['--bucket', bucket, '--collection', collection, '--model', MODEL], {
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        QDRANT_URL: `http://127.0.0.1:${qdrantPort}`,
      });
      expect(r.code).toBe(1);
      expect(rowsOf(r.out)).toEqual([
        {
          check: 'redis',
          status: 'fail',
          detail: `redis://127.0.0.1:${redisPort}: connect ECONNREFUSED 127.0.0.1:${redisPort}`,
          action: 'start Redis, or fix REDIS_URL / --redis-url (and its password)',
        },
        { check: 'redis eviction', status: 'skip', detail: 'not checked: Redis did not answer', action: '' },
        { check: 'redis persistence', status: 'skip', detail: 'not checked: Redis did not answer', action: '' },
        ...bucketRows(),
        {
          check: 'qdrant',
          status: 'fail',
          detail: `http://127.0.0.1:${qdrantPort}: network error: connect ECONNREFUSED 127.0.0.1:${qdrantPort}`,
          action: 'start Qdrant, or fix QDRANT_URL / --qdrant-url',
        },
        { check: 'collection', status: 'skip', detail: 'not checked: Qdrant did not answer', action: '' },
        apiRow(),
        mediaRow(),
      ]);
      expect(r.raw.stderr).toBe('');
    },
    TEST_TIMEOUT,
  );

  it(
    'fails Redis and Qdrant that accept connections but never answer within --timeout',
    async () => {
      const hung = await silentServer();
      try {
        const collection = collectionName();
        const r = await doctorJson(
          ['--bucket', bucket, '--collection', collection, '--model', MODEL, '--timeout', '2'],
          {
            REDIS_URL: hung.url('redis'),
            QDRANT_URL: hung.url('http'),
          },
        );
        expect(r.code).toBe(1);
        expect(rowsOf(r.out)).toEqual([
          {
            check: 'redis',
            status: 'fail',
            detail: `no answer within 2 s from ${hung.url('redis')}`,
            action: 'start Redis, or fix REDIS_URL / --redis-url (and its password)',
          },
          { check: 'redis eviction', status: 'skip', detail: 'not checked: Redis did not answer', action: '' },
          { check: 'redis persistence', status: 'skip', detail: 'not checked: Redis did not answer', action: '' },
          ...bucketRows(),
          {
            check: 'qdrant',
            status: 'fail',
            detail: `no answer within 2 s from ${hung.url('http')}`,
            action: 'start Qdrant, or fix QDRANT_URL / --qdrant-url',
          },
          { check: 'collection', status: 'skip', detail: 'not checked: Qdrant did not answer', action: '' },
          apiRow(),
          mediaRow(),
        ]);
        expect(r.raw.stderr).toBe('');
        // the checks run in parallel: about one timeout, plus the process's start (a hang would be minutes)
        expect(r.ms).toBeLessThan(15_000);
      } finally {
        await hung.close();
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'reports a malformed setting as a configuration error (exit 2) before checking anything',
    async () => {
      const r = await doctor([
        '--bucket',
        bucket,
        '--collection',
        collectionName(),
        '--model',
        MODEL,
        '--dimension',
        '1000',
      ]);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
        code: 2,
        stdout: '',
        stderr: `mm-ingest: configuration error: dimension: 1000 is not a dimension of ${MODEL} (it takes 2560, 2048, 1536, 1024, 768, 512, 256)\n`,
      });
    },
    TEST_TIMEOUT,
  );
});
