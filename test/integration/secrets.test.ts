/**
 * Secrets in messages: each outside system answers with an error that echoes a presigned
 * URL (its signature and credential) and a URL with a password, the way providers, stores
 * and proxies do, and a malformed variable holds a Redis URL with a password. Real
 * `index`, `worker`, `status`, `failures`, `runs` and `dashboard` processes against MinIO,
 * the simulator and the Qdrant stand-in, with proxies in front of each that answer with
 * the planted errors. Then every place such a message can end up is searched: every Redis
 * key of the test's prefix (SCAN, each value dumped by type, BullMQ's failed reasons,
 * stack traces and event streams included), the worker's and every command's output, the
 * reports, and the dashboard's pages and APIs (Bull Board's too). None may hold a secret.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { startHttpProxy } from '../support/http-proxy.js';
import type { HttpProxy, SeenRequest } from '../support/http-proxy.js';
import { runIdOf } from '../support/incremental.js';
import { figures, runCli, startCli, startPipelineEnv, TEST_API_KEY } from '../support/pipeline.js';
import type { BackgroundCli, CliResult, PipelineEnv } from '../support/pipeline.js';
import { freePort } from '../support/ports.js';
import { startS3Proxy } from '../support/s3-proxy.js';
import type { S3Proxy } from '../support/s3-proxy.js';
import { createBucket, putObject } from '../support/s3.js';

const BUCKET = 'secrets';
const MODEL = 'qwen3-vl-embedding';

const SIGNATURE = 'f3a9c1d27e5b4a8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e';
const CREDENTIAL = 'AKIAPLANTEDCRED7Q2Z';
const PASSWORD = 'Pl4nted-Passw0rd';
const REDIS_PASSWORD = 'R3dis-Planted-Pw';
const QDRANT_KEY = 'qdrant-planted-key-5f1e9b';
const PRESIGNED = `https://media.s3.us-east-1.amazonaws.com/clips/a.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${CREDENTIAL}%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=${SIGNATURE}`;
const WITH_PASSWORD = `http://ingest:${PASSWORD}@proxy.internal.example:3128/`;
/** What every planted error says. */
const PLANTED = `could not download ${PRESIGNED} through ${WITH_PASSWORD}`;
const SECRETS = [SIGNATURE, CREDENTIAL, PASSWORD, REDIS_PASSWORD, QDRANT_KEY, TEST_API_KEY];

/** The secrets `text` holds, each with a little of what surrounds it. */
function leaks(where: string, text: string): string[] {
  return SECRETS.flatMap((s) => {
    const at = text.indexOf(s);
    return at < 0 ? [] : [`${where}: ${s} in ...${text.slice(Math.max(0, at - 80), at + s.length + 20)}...`];
  });
}

const xml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const s3Error = (code: string, message: string, resource: string): string =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xml(message)}</Message><Resource>${xml(resource)}</Resource><RequestId>PLANTED0001</RequestId></Error>`;
const bodyHas = (req: SeenRequest, marker: string): boolean => JSON.stringify(req.body ?? '').includes(marker);

describe("no secret from an outside system's message is stored or shown", () => {
  let env: PipelineEnv;
  let api: HttpProxy;
  let qdrant: HttpProxy;
  let s3: S3Proxy;
  let worker: BackgroundCli;
  let cliEnv: NodeJS.ProcessEnv;
  /** Everything every command printed, by command. */
  const outputs: [string, string][] = [];
  const runIds: string[] = [];

  async function cli(args: readonly string[], extra: NodeJS.ProcessEnv = {}): Promise<CliResult & { ms: number }> {
    const started = Date.now();
    const result = await runCli(args, { ...cliEnv, ...extra });
    outputs.push([args.join(' '), `${result.stdout}\n${result.stderr}`]);
    return { ...result, ms: Date.now() - started };
  }

  beforeAll(async () => {
    env = await startPipelineEnv();
    api = await startHttpProxy(env.sim.url);
    qdrant = await startHttpProxy(env.qdrantUrl);
    s3 = await startS3Proxy(env.s3.endpoint);
    await createBucket(env.s3client, BUCKET);
    await putObject(
      env.s3client,
      BUCKET,
      'api/refused.txt',
      'REFUSE-ME: the provider refuses this text, echoing a presigned URL',
    );
    await putObject(env.s3client, BUCKET, 'api/fine.txt', 'an ordinary text, embedded as usual');
    await putObject(
      env.s3client,
      BUCKET,
      'fatal/a.txt',
      'FATAL-ME: the provider refuses the account, echoing a presigned URL',
    );
    await putObject(env.s3client, BUCKET, 's3/denied.txt', 'the store refuses to hand this one out');
    await putObject(env.s3client, BUCKET, 'qdrant/a.txt', 'Qdrant refuses to store the vector of this one');
    await putObject(env.s3client, BUCKET, 'listing/a.txt', 'never listed: the listing is refused');

    api.intercept = (req) => {
      if (bodyHas(req, 'REFUSE-ME'))
        return {
          status: 400,
          body: { code: 'InvalidParameter', message: `${PLANTED} (key ${TEST_API_KEY})`, request_id: 'planted-400' },
        };
      if (bodyHas(req, 'FATAL-ME'))
        return {
          status: 403,
          body: { code: 'AccessDenied', message: `Access denied: ${PLANTED}`, request_id: 'planted-403' },
        };
      return undefined;
    };
    qdrant.intercept = (req) => {
      if (req.method === 'PUT' && req.path === '/collections/sec-qdrant/points')
        return { status: 400, body: { status: { error: `Wrong input: ${PLANTED} (api-key ${QDRANT_KEY})` }, time: 0 } };
      if (req.method === 'GET' && req.path === '/collections/sec-unreadable')
        return { status: 500, body: { status: { error: `Service internal error: ${PLANTED}` }, time: 0 } };
      return undefined;
    };
    s3.respond = (method, path, query) => {
      if (method === 'GET' && path === `/${BUCKET}/s3/denied.txt`)
        return { status: 403, body: s3Error('AccessDenied', `Access Denied for ${PLANTED}`, path) };
      if (method === 'GET' && (path === `/${BUCKET}` || path === `/${BUCKET}/`) && query.includes('prefix=listing'))
        return { status: 403, body: s3Error('AccessDenied', `Listing refused: ${PLANTED}`, path) };
      return undefined;
    };

    cliEnv = {
      ...env.env,
      DASHSCOPE_BASE_URL: api.url,
      QDRANT_URL: qdrant.url,
      QDRANT_API_KEY: env.env.QDRANT_API_KEY ?? QDRANT_KEY,
      S3_ENDPOINT: s3.endpoint,
      LOG_LEVEL: 'debug',
      API_BACKOFF_MS: '50',
    };
    worker = startCli(['worker', '--no-reindex', '--concurrency', '4'], cliEnv);
    await worker.waitFor(/worker ready/);
  }, 120_000);

  afterAll(async () => {
    await worker?.stop('SIGTERM');
    await api?.close();
    await qdrant?.close();
    await s3?.close();
    await env?.close();
  });

  const index = (prefix: string, collection: string, wait = true): Promise<CliResult & { ms: number }> =>
    cli([
      'index',
      '--bucket',
      BUCKET,
      '--prefix',
      prefix,
      '--collection',
      collection,
      '--model',
      MODEL,
      '--dimension',
      '256',
      ...(wait ? ['--wait'] : []),
    ]);

  it('the API: a 400 echoing a presigned URL fails its object; a 403 echoing one pauses the queue', async () => {
    const refused = await index('api/', 'sec-api');
    expect(refused.code).toBe(1);
    runIds.push(runIdOf(refused.stdout));

    const paused = await index('fatal/', 'sec-fatal');
    const pausedId = runIdOf(paused.stdout);
    runIds.push(pausedId);
    // the reason as stored (resume deletes it, so it is read now)
    const reason = (await env.redis.get(`${env.prefix}:embed:paused-reason`)) ?? '';
    await cli(['status', '--run', pausedId]);
    await cli(['failures', '--run', pausedId]);
    api.intercept = (req) =>
      bodyHas(req, 'REFUSE-ME')
        ? {
            status: 400,
            body: { code: 'InvalidParameter', message: `${PLANTED} (key ${TEST_API_KEY})`, request_id: 'planted-400' },
          }
        : undefined;
    expect((await cli(['resume'])).code).toBe(0);
    expect((await cli(['status', '--run', pausedId, '--wait'])).code).toBe(0);

    expect(paused.code).toBe(3);
    const line = paused.stdout.split('\n').find((l) => l.includes('the queue is paused')) ?? '';
    figures(
      `API 403 echoing a presigned URL and a proxy password: index --wait exit ${paused.code} in ${paused.ms} ms: ${line}`,
    );
    expect(reason).toContain('AccessDenied');
    expect(leaks('pause reason', reason)).toEqual([]);
    expect(line).toContain('AccessDenied');
    expect(line).toContain('https://media.s3.us-east-1.amazonaws.com/clips/a.mp4?[redacted]');
    expect(line).toContain('http://ingest:***@proxy.internal.example:3128/');
  }, 300_000); // several CLI runs and a pause: minutes on a loaded machine

  it('S3 and Qdrant: a refused read fails its object at once, a refused write its job after its attempts, echoing secrets', async () => {
    const s3Run = await index('s3/', 'sec-s3', false);
    const qdrantRun = await index('qdrant/', 'sec-qdrant', false);
    const ids = [runIdOf(s3Run.stdout), runIdOf(qdrantRun.stdout)];
    runIds.push(...ids);
    // Qdrant's refusal: six attempts with BullMQ's exponential backoff (2 s doubling), about a minute
    const ends = await Promise.all(ids.map((id) => cli(['status', '--run', id, '--wait'])));
    expect(ends.map((e) => e.code)).toEqual([1, 1]);
    const [s3Failures, qdrantFailures] = await Promise.all(
      ids.map(async (id) => {
        const out = await cli(['failures', '--run', id, '--json']);
        return JSON.parse(out.stdout) as {
          jobs: { attempts?: number; error: string }[];
          items: Record<string, { status: string; code: string; reason: string }>;
        };
      }),
    );
    // the store's 403 is the object's reason, its job done; no retry would have read it
    expect(s3Failures!.jobs).toEqual([]);
    const denied = s3Failures!.items['s3/denied.txt'];
    expect([denied?.status, denied?.code]).toEqual(['failed', 'access-denied']);
    expect(denied?.reason).toContain('AccessDenied');
    expect(leaks('S3 item reason', denied?.reason ?? '')).toEqual([]);
    // Qdrant's 400 fails the job for good after its attempts, its object failed
    expect(qdrantFailures!.items['qdrant/a.txt']).toMatchObject({ status: 'failed' });
    expect(qdrantFailures!.jobs.length).toBe(1);
    const queue = new Queue('embed', { connection: env.redis, prefix: env.prefix });
    const failed = (await queue.getFailed()).filter((j) => (j.data as { runId?: string }).runId === ids[1]);
    await queue.close();
    expect(failed.map((j) => j.attemptsMade)).toEqual([6]);
  }, 180_000);

  it("S3 listing and Qdrant at the start of index: the command's one line holds no secret", async () => {
    const listing = await index('listing/', 'sec-listing');
    expect(listing.code).toBe(1);
    const id = /run (\S+): scanning/.exec(listing.stdout)?.[1];
    if (id) runIds.push(id);
    const line = listing.stderr.trim().split('\n').pop() ?? '';
    expect(line).toContain('AccessDenied');
    expect(line).toContain('?[redacted]');
    figures(
      `S3 listing refused with a presigned URL and a password in the message: index exit ${listing.code} in ${listing.ms} ms: ${line}`,
    );

    const unreadable = await index('api/', 'sec-unreadable');
    expect(unreadable.code).not.toBe(0);
    const qline = unreadable.stderr.trim().split('\n').pop() ?? '';
    expect(qline).toContain('?[redacted]');
    figures(
      `Qdrant 500 echoing a presigned URL and a password: index exit ${unreadable.code} in ${unreadable.ms} ms: ${qline}`,
    );
  }, 120_000);

  it('a malformed variable holding a password is echoed masked', async () => {
    const redis = await cli(['status'], { REDIS_URL: `redis://default:${REDIS_PASSWORD}@127.0.0.1:6379/0 and more` });
    expect(redis.code).toBe(2);
    expect(redis.stderr.trim()).toBe(
      'mm-ingest: configuration error: REDIS_URL: must be a redis:// or rediss:// URL (for a cluster: several, comma-separated) (got "redis://default:***@127.0.0.1:6379/0 and more")',
    );
    figures(`REDIS_URL with a password, malformed: exit ${redis.code} in ${redis.ms} ms: ${redis.stderr.trim()}`);
    const qdrantUrl = await cli(['status'], {
      QDRANT_URL: `http://admin:${PASSWORD}@qdrant.internal.example:99999/?api-key=${QDRANT_KEY}`,
    });
    expect(qdrantUrl.code).toBe(2);
    expect(qdrantUrl.stderr.trim()).toBe(
      'mm-ingest: configuration error: QDRANT_URL: Invalid URL (got "http://admin:***@qdrant.internal.example:99999/?[redacted]")',
    );
  }, 60_000);

  it('leaves no secret in Redis, the outputs, the reports or the dashboard', async () => {
    for (const id of runIds) {
      await cli(['status', '--run', id]);
      await cli(['failures', '--run', id]);
      await cli(['failures', '--run', id, '--json']);
      await cli(['runs', 'show', id]);
      await cli(['runs', 'show', id, '--json']);
    }
    await cli(['runs', '--json']);
    const found: string[] = [];

    // every key of the test's prefix, every value
    let cursor = '0';
    let keys = 0;
    do {
      const [next, batch] = await env.redis.scan(cursor, 'MATCH', `${env.prefix}*`, 'COUNT', 500);
      cursor = next;
      for (const key of batch) {
        keys += 1;
        const type = await env.redis.type(key);
        const value =
          type === 'string'
            ? await env.redis.get(key)
            : type === 'hash'
              ? JSON.stringify(await env.redis.hgetall(key))
              : type === 'list'
                ? JSON.stringify(await env.redis.lrange(key, 0, -1))
                : type === 'set'
                  ? JSON.stringify(await env.redis.smembers(key))
                  : type === 'zset'
                    ? JSON.stringify(await env.redis.zrange(key, '0', '-1'))
                    : type === 'stream'
                      ? JSON.stringify(await env.redis.xrange(key, '-', '+'))
                      : '';
        found.push(...leaks(`redis ${key}`, value ?? ''));
      }
    } while (cursor !== '0');
    expect(keys).toBeGreaterThan(20);
    const queue = new Queue('embed', { connection: env.redis, prefix: env.prefix });
    const failedJobs = await queue.getFailed();
    await queue.close();

    // the dashboard: pages, its API, Bull Board's API for every failed job
    const port = await freePort();
    const dashboard = startCli(['dashboard', '--port', String(port)], cliEnv);
    await dashboard.waitFor(/dashboard on /);
    const base = `http://127.0.0.1:${port}`;
    const queueName = encodeURIComponent(`${env.prefix}:embed`);
    const paths = [
      '/',
      '/api/runs',
      '/queues',
      `/queues/api/queues?activeQueue=${queueName}&status=failed&page=1&jobsPerPage=50`,
      `/queues/api/queues?activeQueue=${queueName}&status=completed&page=1&jobsPerPage=50`,
    ];
    for (const id of runIds) paths.push(`/runs/${id}`, `/api/runs/${id}`);
    for (const j of failedJobs) paths.push(`/queues/api/queues/${queueName}/${encodeURIComponent(j.id ?? '')}`);
    let dashboardBytes = 0;
    try {
      for (const path of paths) {
        const res = await fetch(`${base}${path}`);
        const text = await res.text();
        expect([path, res.status]).toEqual([path, 200]);
        dashboardBytes += text.length;
        found.push(...leaks(`dashboard ${path}`, text));
      }
    } finally {
      await dashboard.stop('SIGTERM');
    }
    outputs.push(['dashboard', dashboard.output()]);

    outputs.push(['worker', worker.output()]);
    for (const [cmd, out] of outputs) found.push(...leaks(cmd, out));
    expect(found).toEqual([]);
    // the planted messages did get through to the places searched: failed jobs and objects
    // (the S3 refusal's reason is its object's, searched with the failures outputs above)
    expect(failedJobs.length).toBeGreaterThanOrEqual(1);
    for (const j of failedJobs) expect(j.failedReason).toContain('[redacted]');
    const failures = outputs
      .filter(([cmd]) => cmd.startsWith('failures') && !cmd.includes('--json'))
      .map(([, out]) => out)
      .join('\n');
    expect(failures).toContain('https://media.s3.us-east-1.amazonaws.com/clips/a.mp4?[redacted]');
    figures(
      `searched ${keys} Redis keys, ${outputs.length} outputs (worker log ${worker.output().length} bytes) and ${paths.length} dashboard answers (${dashboardBytes} bytes): no secret`,
    );
  }, 300_000); // some 30 CLI processes one after another: minutes on a loaded machine
});
