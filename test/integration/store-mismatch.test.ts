/**
 * A collection this tool cannot write as it means to is refused by `mm-ingest index`
 * before anything is queued, so no request is paid: another distance than Cosine, named
 * vectors, sparse vectors. Real `index --wait` and `worker` processes against MinIO, the
 * simulator and the Qdrant stand-in. The stand-in takes only one unnamed dense vector per
 * collection (it refuses named and sparse vectors at creation, as not implemented), so
 * those two collections are real stand-in collections whose description a proxy rewrites
 * as Qdrant 1.19 describes such a collection.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startHttpProxy } from '../support/http-proxy.js';
import type { HttpProxy } from '../support/http-proxy.js';
import { figures, runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { BackgroundCli, PipelineEnv } from '../support/pipeline.js';
import { createBucket, putObject } from '../support/s3.js';

const BUCKET = 'mismatch';
const MODEL = 'qwen3-vl-embedding';

interface Described {
  result: { config: { params: { vectors: unknown; sparse_vectors?: unknown } } };
}

describe('a collection of another kind is refused before any request is paid', () => {
  let env: PipelineEnv;
  let proxy: HttpProxy;
  let worker: BackgroundCli;
  const collections: string[] = [];

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

  async function collection(distance: string): Promise<string> {
    const name = `mismatch-${randomUUID().slice(0, 8)}`;
    collections.push(name);
    await qdrant('PUT', `/collections/${name}`, { vectors: { size: 256, distance } });
    return name;
  }

  /** `index --wait` through the proxy, the worker running: what it printed, its exit code and time, what was paid. */
  async function index(
    name: string,
  ): Promise<{ code: number | null; stderr: string; stdout: string; ms: number; requests: number; jobs: number }> {
    const before = env.sim.stats().requests;
    const started = Date.now();
    const result = await runCli(
      ['index', '--bucket', BUCKET, '--collection', name, '--model', MODEL, '--dimension', '256', '--wait'],
      { ...env.env, QDRANT_URL: proxy.url },
    );
    const ms = Date.now() - started;
    // a job queued despite the refusal would be taken by the worker within this time
    await new Promise((r) => setTimeout(r, 1000));
    const jobs = (await env.redis.keys(`${env.prefix}:embed:*`)).filter((k) => /:embed:[^:]+\.[^:]+$/.test(k)).length;
    return { ...result, ms, requests: env.sim.stats().requests - before, jobs };
  }

  beforeAll(async () => {
    env = await startPipelineEnv();
    proxy = await startHttpProxy(env.qdrantUrl);
    await createBucket(env.s3client, BUCKET);
    await putObject(
      env.s3client,
      BUCKET,
      'docs/a.txt',
      'a text that would be embedded, and paid for, if the collection were taken',
    );
    worker = startCli(['worker', '--no-reindex'], { ...env.env, QDRANT_URL: proxy.url });
    await worker.waitFor(/worker ready/);
  }, 120_000);

  afterAll(async () => {
    await worker?.stop('SIGTERM');
    for (const name of collections) await qdrant('DELETE', `/collections/${name}`).catch(() => undefined);
    await proxy?.close();
    await env?.close();
  });

  it.each(['Dot', 'Euclid', 'Manhattan'])(
    'refuses a collection of %s distance, naming the distance',
    async (distance) => {
      const name = await collection(distance);
      const out = await index(name);
      expect(out.code).toBe(2);
      const line = `mm-ingest: configuration error: collection: "${name}" compares vectors by ${distance} distance; this tool writes Cosine vectors and needs a Cosine collection (use another --collection)`;
      expect(out.stderr.trim()).toBe(line);
      expect(out.stdout).not.toMatch(/scanning/);
      expect(out.requests).toBe(0);
      expect(out.jobs).toBe(0);
      figures(
        `${distance}-distance collection: index exit ${out.code} in ${out.ms} ms, ${out.requests} API requests: ${line}`,
      );
    },
    60_000,
  );

  it('refuses a collection of named vectors, naming them', async () => {
    const name = await collection('Cosine');
    proxy.rewrite = (req, status, body) => {
      if (req.method !== 'GET' || req.path !== `/collections/${name}` || status !== 200) return body;
      const described = body as Described;
      described.result.config.params.vectors = {
        image: { size: 256, distance: 'Cosine' },
        text: { size: 256, distance: 'Cosine' },
      };
      return described;
    };
    const out = await index(name);
    proxy.rewrite = (_req, _status, body) => body;
    expect(out.code).toBe(2);
    const line = `mm-ingest: configuration error: collection: "${name}" has named vectors (image, text); this tool writes one unnamed vector per point (use another --collection)`;
    expect(out.stderr.trim()).toBe(line);
    expect(out.requests).toBe(0);
    expect(out.jobs).toBe(0);
    figures(
      `named-vector collection (described through the proxy): index exit ${out.code} in ${out.ms} ms, ${out.requests} API requests: ${line}`,
    );
  }, 60_000);

  it('refuses a collection with sparse vectors, naming them', async () => {
    const name = await collection('Cosine');
    proxy.rewrite = (req, status, body) => {
      if (req.method !== 'GET' || req.path !== `/collections/${name}` || status !== 200) return body;
      const described = body as Described;
      described.result.config.params.sparse_vectors = { keywords: { modifier: 'idf' } };
      return described;
    };
    const out = await index(name);
    proxy.rewrite = (_req, _status, body) => body;
    expect(out.code).toBe(2);
    const line = `mm-ingest: configuration error: collection: "${name}" has sparse vectors (keywords); this tool writes one unnamed dense vector per point and nothing else (use another --collection)`;
    expect(out.stderr.trim()).toBe(line);
    expect(out.requests).toBe(0);
    expect(out.jobs).toBe(0);
    figures(
      `sparse-vector collection (described through the proxy): index exit ${out.code} in ${out.ms} ms, ${out.requests} API requests: ${line}`,
    );
  }, 60_000);

  it('still takes a Cosine collection of the right size (the control)', async () => {
    const name = await collection('Cosine');
    const out = await index(name);
    expect({ code: out.code, stderr: out.stderr }).toEqual({ code: 0, stderr: '' });
    expect(out.requests).toBeGreaterThan(0);
  }, 60_000);
});
