/**
 * Nothing paid for twice, and no run stuck on a quota: real `index`, `worker`, `status`,
 * `retry-failed` and `resume` processes against MinIO, the simulator and the Qdrant
 * stand-in, with proxies in front of the simulator and of Qdrant for what they do not do
 * on their own (a write refused, an answer of the wrong shape, a quota that is gone).
 * Every figure of what was paid comes from the simulator's own request count.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { QdrantClient } from '@qdrant/js-client-rest';
import { pointId } from '../../src/ids.js';
import { RunStore } from '../../src/runs.js';
import { runIdOf, words } from '../support/incremental.js';
import { mp4 } from '../support/media-fixtures.js';
import { startHttpProxy } from '../support/http-proxy.js';
import type { HttpProxy, SeenRequest } from '../support/http-proxy.js';
import { createBucket, putObject } from '../support/s3.js';
import { figures, runCli, startCli, startPipelineEnv, stopCli } from '../support/pipeline.js';
import type { BackgroundCli, CliResult, PipelineEnv } from '../support/pipeline.js';

const BUCKET = 'paid';

const exit = (result: CliResult): { code: number | null; out: string } => ({
  code: result.code,
  out: `${result.stdout}\n${result.stderr}`.slice(-3000),
});
const isUpsert = (req: SeenRequest, collection: string): boolean =>
  req.method === 'PUT' && req.path === `/collections/${collection}/points`;
const upsertIds = (req: SeenRequest): string[] =>
  ((req.body as { points?: { id: string }[] }).points ?? []).map((p) => String(p.id));

describe('nothing paid for twice, no run stuck on a quota', () => {
  let env: PipelineEnv;
  let api: HttpProxy;
  let store: HttpProxy;
  let qdrant: QdrantClient;
  let runs: RunStore;
  const workers: BackgroundCli[] = [];

  const requests = (): number => env.sim.stats().requests;
  const count = async (collection: string): Promise<number> => (await qdrant.count(collection, { exact: true })).count;
  async function worker(extra: NodeJS.ProcessEnv): Promise<BackgroundCli> {
    const w = startCli(['worker', '--concurrency', '1'], { ...env.env, RATE_LIMIT: 'off', ...extra });
    workers.push(w);
    await w.waitFor(/worker ready/);
    return w;
  }
  async function stopWorkers(): Promise<void> {
    for (const w of workers.splice(0)) await stopCli(w);
  }

  beforeAll(async () => {
    env = await startPipelineEnv();
    api = await startHttpProxy(env.sim.url);
    store = await startHttpProxy(env.qdrantUrl);
    qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    runs = new RunStore(env.redis, env.prefix);
    await createBucket(env.s3client, BUCKET);
  }, 120_000);

  afterAll(async () => {
    await stopWorkers();
    await api?.close();
    await store?.close();
    await env?.close();
  });

  it('redoes only the chunks a refused write left unwritten, from the vectors it kept, buying no request twice', async () => {
    const key = 'long/manual.txt';
    await putObject(env.s3client, BUCKET, key, words(7, 1500));
    let upserts = 0;
    // the second write of the text's points (its second request's chunks) is refused once
    store.intercept = (req) =>
      isUpsert(req, 'chunks') && ++upserts === 2
        ? { status: 400, body: { status: { error: 'Wrong input: refused by the test' }, time: 0 } }
        : undefined;
    await worker({ QDRANT_URL: store.url, CHUNK_TOKENS: '64' });
    const before = requests();
    const result = await runCli(
      [
        'index',
        '--bucket',
        BUCKET,
        '--prefix',
        'long/',
        '--collection',
        'chunks',
        '--model',
        'qwen3-vl-embedding',
        '--dimension',
        '256',
        '--wait',
      ],
      { ...env.env, CHUNK_TOKENS: '64' },
    );
    expect(exit(result)).toMatchObject({ code: 0 });
    store.intercept = () => undefined;
    const points = await count('chunks');
    expect(points).toBeGreaterThan(20);
    expect(store.intercepted()).toBe(1);
    // one request for chunks 0-19, one for the rest: the retry wrote the kept vectors
    expect(requests() - before).toBe(2);
    const last = await qdrant.retrieve('chunks', { ids: [pointId(BUCKET, key, points - 1)] });
    expect(last[0]?.payload).toMatchObject({ key, chunk: points - 1, chunk_count: points });
    expect(await env.redis.hlen(`${env.prefix}:parked:chunks`)).toBe(0);
    figures(
      `refused write of a ${points}-chunk text: 2 requests in all , 1 refusal, the job's retry wrote the kept vectors`,
    );
    await stopWorkers();
  }, 180_000);

  it('fails only the object whose points were not written, and retry-failed writes its kept vectors without a request', async () => {
    // "x x x ...": about 2 bytes a token, so the producer puts both in one job of two requests
    const small = 'pair/small.txt';
    const large = 'pair/large.txt';
    await putObject(env.s3client, BUCKET, small, Array.from({ length: 600 }, () => 'x').join(' '));
    await putObject(env.s3client, BUCKET, large, Array.from({ length: 700 }, () => 'y').join(' '));
    const refused = pointId(BUCKET, small, 0);
    let refuse = true;
    store.intercept = (req) =>
      refuse && isUpsert(req, 'pair') && upsertIds(req).includes(refused)
        ? { status: 400, body: { status: { error: 'Wrong input: refused by the test' }, time: 0 } }
        : undefined;
    await worker({ QDRANT_URL: store.url });
    const args = ['--collection', 'pair', '--model', 'tongyi-embedding-vision-plus', '--dimension', '256'];
    const before = requests();
    const result = await runCli(['index', '--bucket', BUCKET, '--prefix', 'pair/', ...args, '--wait'], env.env);
    expect(exit(result)).toMatchObject({ code: 1 });
    const runId = runIdOf(result.stdout);
    const run = await runs.get(runId);
    expect(run?.counters).toMatchObject({ jobsAdded: 1, jobsFailed: 1, objectsFailed: 1, objectsIndexed: 1 });
    const items = await runs.items(runId);
    expect(items.get(small)).toMatchObject({ status: 'failed' });
    expect(items.has(large)).toBe(false);
    // two requests, once: the job's five retries wrote nothing new and bought nothing
    const paidFirst = requests() - before;
    expect(paidFirst).toBe(2);

    refuse = false;
    const retry = await runCli(['retry-failed', '--run', runId], env.env);
    expect(exit(retry)).toMatchObject({ code: 0 });
    expect(retry.stdout).toContain('retrying 1 failed objects');
    const retryId = /run (\S+): retrying/.exec(retry.stdout)?.[1] ?? '';
    const done = await runCli(['status', '--run', retryId, '--wait'], env.env);
    expect(exit(done)).toMatchObject({ code: 0 });
    expect(requests() - before).toBe(2);
    expect(await count('pair')).toBe(2);
    figures(
      `final job failure with one of two objects written: objects failed 1, indexed 1; requests ${paidFirst} before retry-failed, 0 after`,
    );
    store.intercept = () => undefined;
    await stopWorkers();
  }, 240_000);

  it('finishes a rebuild through retry-failed: the alias moves once the retried objects are indexed', async () => {
    await putObject(env.s3client, BUCKET, 'rb/good-1.txt', 'a first good text');
    await putObject(env.s3client, BUCKET, 'rb/good-2.txt', 'a second good text');
    await putObject(env.s3client, BUCKET, 'rb/bad.txt', 'refused by moderation [[sim:DataInspectionFailed]]');
    await worker({});
    const rebuild = await runCli(
      [
        'index',
        '--bucket',
        BUCKET,
        '--prefix',
        'rb/',
        '--collection',
        'rb',
        '--model',
        'qwen3-vl-embedding',
        '--dimension',
        '256',
        '--mode',
        'rebuild',
        '--wait',
      ],
      env.env,
    );
    expect(exit(rebuild)).toMatchObject({ code: 1 });
    const runId = runIdOf(rebuild.stdout);
    expect((await runs.get(runId))?.notes.rebuild).toMatch(/^not switched: 1 objects and 0 jobs failed/);
    expect((await qdrant.getAliases()).aliases.some((a) => a.alias_name === 'rb')).toBe(false);

    await putObject(env.s3client, BUCKET, 'rb/bad.txt', 'a third text, fixed');
    const retry = await runCli(['retry-failed', '--run', runId], env.env);
    expect(exit(retry)).toMatchObject({ code: 0 });
    expect(retry.stdout).toContain('the rebuild switches its alias when this run ends with nothing failed');
    const retryId = /run (\S+): retrying/.exec(retry.stdout)?.[1] ?? '';
    const done = await runCli(['status', '--run', retryId, '--wait'], env.env);
    expect(exit(done)).toMatchObject({ code: 0 });
    expect((await qdrant.getAliases()).aliases.find((a) => a.alias_name === 'rb')?.collection_name).toBe(
      `rb--${runId.toLowerCase()}`,
    );
    expect(await count('rb')).toBe(3);
    await stopWorkers();
  }, 180_000);

  it('fails the inputs of an answer of the wrong shape without sending it again, and pauses the run when one comes again', async () => {
    await putObject(env.s3client, BUCKET, 'shape/one.txt', 'the first text');
    await putObject(env.s3client, BUCKET, 'shape/two.txt', 'the second text');
    let mangle = true;
    api.rewrite = (_req, status, body) => {
      const b = body as { output?: { embeddings?: { embedding: number[] }[] } };
      if (!mangle || status !== 200 || !b.output?.embeddings) return body;
      return {
        ...b,
        output: {
          ...b.output,
          embeddings: b.output.embeddings.map((e) => ({ ...e, embedding: e.embedding.slice(1) })),
        },
      };
    };
    await worker({ DASHSCOPE_BASE_URL: api.url });
    const args = [
      'index',
      '--bucket',
      BUCKET,
      '--collection',
      'shape',
      '--model',
      'qwen3-vl-embedding',
      '--dimension',
      '256',
    ];
    const before = requests();
    const first = await runCli([...args, '--key', 'shape/one.txt', '--wait'], env.env);
    expect(exit(first)).toMatchObject({ code: 1 });
    expect((await runs.items(runIdOf(first.stdout))).get('shape/one.txt')).toMatchObject({
      status: 'failed',
      code: 'bad-response',
    });
    expect(requests() - before).toBe(1);

    const second = await runCli([...args, '--key', 'shape/two.txt', '--wait'], env.env);
    expect(exit(second)).toMatchObject({ code: 3 });
    expect(second.stdout).toContain('disagree');
    expect(requests() - before).toBe(2);

    mangle = false;
    const resumed = await runCli(['resume'], env.env);
    expect(exit(resumed)).toMatchObject({ code: 0 });
    const done = await runCli(['status', '--run', runIdOf(second.stdout), '--wait'], env.env);
    expect(exit(done)).toMatchObject({ code: 0 });
    expect(requests() - before).toBe(3);
    figures(
      'answers of the wrong shape: 1 request for the first (its input failed bad-response), the second paused the queue; 3 requests in all with the one after resume',
    );
    api.rewrite = (_req, _status, body) => body;
    await stopWorkers();
  }, 180_000);

  it("pauses the run with the provider's reason when the free quota is gone, and finishes it after resume", async () => {
    await putObject(env.s3client, BUCKET, 'quota/one.txt', 'a text for a quota that is gone');
    let gone = true;
    api.intercept = () =>
      gone
        ? {
            status: 429,
            body: {
              code: 'Throttling.AllocationQuota',
              message: 'Free allocated quota exceeded.',
              request_id: 'test-quota',
            },
          }
        : undefined;
    await worker({ DASHSCOPE_BASE_URL: api.url });
    const seen = api.intercepted();
    const result = await runCli(
      [
        'index',
        '--bucket',
        BUCKET,
        '--collection',
        'quota',
        '--model',
        'qwen3-vl-embedding',
        '--dimension',
        '256',
        '--key',
        'quota/one.txt',
        '--wait',
      ],
      env.env,
    );
    expect(exit(result)).toMatchObject({ code: 3 });
    expect(result.stdout).toContain('Free allocated quota exceeded');
    expect(api.intercepted() - seen).toBe(1);
    gone = false;
    expect(exit(await runCli(['resume'], env.env))).toMatchObject({ code: 0 });
    const done = await runCli(['status', '--run', runIdOf(result.stdout), '--wait'], env.env);
    expect(exit(done)).toMatchObject({ code: 0 });
    api.intercept = () => undefined;
    await stopWorkers();
  }, 180_000);

  it('pauses a run whose requests meet 429s without a break for QUOTA_PAUSE_AFTER_MS', async () => {
    await putObject(env.s3client, BUCKET, 'quota/two.txt', 'a text for a TPM that never comes back');
    let throttled = true;
    api.intercept = () =>
      throttled
        ? {
            status: 429,
            body: {
              code: 'Throttling.RateQuota',
              message: 'Requests rate limit exceeded, please try again later.',
              request_id: 'test-rate',
            },
          }
        : undefined;
    await worker({ DASHSCOPE_BASE_URL: api.url, QUOTA_PAUSE_AFTER_MS: '3000' });
    const result = await runCli(
      [
        'index',
        '--bucket',
        BUCKET,
        '--collection',
        'quota',
        '--model',
        'qwen3-vl-embedding',
        '--dimension',
        '256',
        '--key',
        'quota/two.txt',
        '--wait',
      ],
      env.env,
    );
    expect(exit(result)).toMatchObject({ code: 3 });
    expect(result.stdout).toMatch(/refused with 429 for \d+ s without a break/);
    throttled = false;
    expect(exit(await runCli(['resume'], env.env))).toMatchObject({ code: 0 });
    const done = await runCli(['status', '--run', runIdOf(result.stdout), '--wait'], env.env);
    expect(exit(done)).toMatchObject({ code: 0 });
    figures(
      `429s without a break: paused after QUOTA_PAUSE_AFTER_MS=3000 with ${api.intercepted()} refusals seen in all`,
    );
    api.intercept = () => undefined;
    await stopWorkers();
  }, 180_000);
});

describe('video tokens count toward the TPM', () => {
  let env: PipelineEnv;
  const overrides = { 'qwen3-vl-embedding': { tpm: 2500 } };

  beforeAll(async () => {
    // videos go by URL: the simulator and the CLI may use this machine's MinIO
    env = await startPipelineEnv({ rateLimits: 'documented', modelOverrides: overrides, allowPrivateUrls: true });
    await createBucket(env.s3client, BUCKET);
    // 4 s each by their mvhd box: the simulator bills 4 frames of 256 tokens at fps 1
    for (let i = 0; i < 3; i++) await putObject(env.s3client, BUCKET, `clips/${i}.mp4`, mp4(4, 500_000 + i));
  }, 120_000);

  afterAll(async () => {
    await env?.close();
  });

  it('paces three 1,024-token videos under a 2,500 TPM with no 429 from a simulator that enforces it', async () => {
    const cliEnv = { ...env.env, MODEL_OVERRIDES: JSON.stringify(overrides) };
    const w = startCli(['worker', '--concurrency', '3'], cliEnv);
    try {
      await w.waitFor(/worker ready/);
      const result = await runCli(
        [
          'index',
          '--bucket',
          BUCKET,
          '--collection',
          'clips',
          '--model',
          'qwen3-vl-embedding',
          '--dimension',
          '256',
          '--wait',
        ],
        cliEnv,
      );
      expect(exit(result)).toMatchObject({ code: 0 });
      const stats = env.sim.stats();
      expect(stats.refusals).toEqual({});
      expect(stats.videos).toBe(3);
      expect(stats.imageTokens).toBe(3 * 1024);
      figures(`3 videos of 1,024 tokens under TPM 2,500: ${stats.requests} requests, 0 refused`);
    } finally {
      await stopCli(w);
    }
  }, 180_000);
});
