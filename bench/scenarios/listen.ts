/**
 * Scenario 7: `mm-ingest listen` under a burst. MinIO (the bench's s3rver sends no events)
 * with a Redis target pushing to the bench's Redis, a listener (`--redis-list`, default
 * batching: 500 keys or 2 s) and two workers at the request model's rate limit (shared
 * limiter, the simulator enforcing the same quota). 1,000 PUTs of short texts as fast as
 * MinIO takes them, then the same 1,000 PUTs again with identical content (events whose
 * objects are unchanged: what a duplicate delivery resolves to).
 *
 * Measured: event-to-point latency (from the PUT's answer to the point first seen in
 * Qdrant with that ETag, polled every 200 ms), embedding requests per event in each burst,
 * the listener's lag (sampled every 200 ms) and how long after the last point it is 0.
 *
 * Also runs alone: `node --import tsx bench/scenarios/listen.ts [--objects N]`.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { QdrantClient } from '@qdrant/js-client-rest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ListenerState } from '../../src/listen/state.js';
import { minioBinary, startMinio } from '../../test/support/minio.js';
import { minioTargets, notifyTo } from '../../test/support/listen.js';
import { createBucket, s3Env, testS3Client } from '../../test/support/s3.js';
import { newPrefix, startBenchEnv } from '../lib/env.js';
import type { BenchEnv } from '../lib/env.js';
import { spawnCli } from '../lib/procs.js';
import type { NodeProcess, ProcSampler } from '../lib/procs.js';
import { benchSettings } from '../settings.js';
import type { Settings } from '../settings.js';

export interface ListenBurst {
  readonly label: string;
  readonly puts: number;
  /** Object events the listener recorded for this burst. */
  readonly events: number;
  readonly requests: number;
  readonly requestsPerEvent: number;
  readonly inputs: number;
}

export interface ListenResult {
  readonly skipped?: string;
  readonly objects: number;
  readonly batchKeys: number;
  readonly batchSeconds: number;
  readonly rpm: number;
  /** Seconds the PUT burst took (MinIO's answers). */
  readonly putS: number;
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly max: number };
  /** From the first PUT to the listener having recorded an event for every one (MinIO's delivery). */
  readonly eventsInS: number;
  /** From the last PUT's answer to the last point seen. */
  readonly drainS: number;
  /** The ceiling: objects / (RPM / 60 x 20 inputs a request). */
  readonly ceilingDrainS: number;
  readonly peakLagS: number;
  /** The listener's lag read once every point is seen, and how long after that it read 0. */
  readonly lagAtLastPointS: number;
  readonly lagZeroAfterS: number;
  readonly lagAfterDrainS: number;
  readonly bursts: readonly ListenBurst[];
  readonly batches: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const quantile = (sorted: readonly number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;

export async function listenScenario(
  env: BenchEnv,
  settings: Settings,
  sampler: ProcSampler | undefined,
  log: (s: string) => void,
  objects = 1000,
): Promise<ListenResult> {
  const rpm = settings.modelOverrides[settings.requestModel]?.rpm ?? 0;
  const base = {
    objects,
    batchKeys: 500,
    batchSeconds: 2,
    rpm,
    putS: 0,
    eventsInS: NaN,
    latencyMs: { p50: NaN, p95: NaN, max: NaN },
    drainS: NaN,
    ceilingDrainS: objects / ((rpm / 60) * 20),
    peakLagS: NaN,
    lagAtLastPointS: NaN,
    lagZeroAfterS: NaN,
    lagAfterDrainS: NaN,
    bursts: [],
    batches: 0,
  };
  if (!minioBinary())
    return { ...base, skipped: 'no MinIO binary (npm run setup builds it): s3rver sends no event notifications' };
  const prefix = newPrefix('listen');
  const list = `${prefix}:minio-events`;
  const queueDir = await mkdtemp(join(tmpdir(), 'bench-listen-'));
  const redisUrl = new URL(env.redisServer.url);
  const minio = await startMinio({
    env: minioTargets({ id: 'bench', queueDir, redis: { address: `${redisUrl.hostname}:${redisUrl.port}`, list } }),
  });
  const s3 = testS3Client(minio);
  const bucket = 'bench-listen';
  const collection = `listen-${prefix}`;
  const cliEnv = env.cliEnv(prefix, {
    ...s3Env(minio),
    ...(process.env.BENCH_LISTEN_RATE_LIMIT ? { RATE_LIMIT: process.env.BENCH_LISTEN_RATE_LIMIT } : {}),
  });
  const procs: NodeProcess[] = [];
  const state = new ListenerState(env.redis, prefix);
  const qdrant = new QdrantClient({
    url: env.qdrantUrl,
    ...(env.qdrantApiKey ? { apiKey: env.qdrantApiKey } : {}),
    checkCompatibility: false,
  });
  try {
    await createBucket(s3, bucket);
    await notifyTo(s3, bucket, 'arn:minio:sqs::BENCH:redis');
    await env.simReset();
    const verbose = process.env.BENCH_LISTEN_LOG === '1';
    for (let i = 0; i < settings.workers; i++)
      procs.push(
        spawnCli(
          ['worker', '--concurrency', String(settings.concurrency)],
          verbose ? { ...cliEnv, LOG_LEVEL: 'info' } : cliEnv,
        ),
      );
    // BENCH_LISTEN_LOG=1: the listener's and workers' info lines on stdout at the end (what each batch waited)
    const listener = spawnCli(
      ['listen', '--redis-list', list, '--map', `${bucket}=${collection}:${settings.requestModel}`],
      verbose ? { ...cliEnv, LOG_LEVEL: 'info' } : cliEnv,
    );
    procs.push(listener);
    for (const p of procs) sampler?.track(p.pid);
    await Promise.all([
      ...procs.slice(0, -1).map((p) => p.waitFor(/worker ready/, 120_000)),
      listener.waitFor(/listen ready/, 120_000),
    ]);

    const keys = Array.from({ length: objects }, (_, i) => `burst/doc-${String(i).padStart(5, '0')}.txt`);
    const body = (i: number): string =>
      `burst document ${i}: ${['river', 'engine', 'violet', 'copper', 'orbit', 'quartz'].map((w, j) => `${w}${(i * 7 + j) % 97}`).join(' ')}`;
    const putAt = new Map<string, { t: number; etag: string }>();
    const putAll = async (): Promise<number> => {
      const t0 = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next < keys.length) {
            const i = next++;
            const out = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: keys[i]!, Body: body(i) }));
            if (!putAt.has(keys[i]!))
              putAt.set(keys[i]!, { t: performance.now(), etag: (out.ETag ?? '').replace(/"/g, '') });
          }
        }),
      );
      return (performance.now() - t0) / 1000;
    };
    const counts = async (): Promise<{ events: number; batchesDone: number; batchesQueued: number }> => {
      const c = (await state.snapshot()).counts;
      return {
        events: c['events:redis:created'] ?? 0,
        batchesDone: c.batchesDone ?? 0,
        batchesQueued: c.batchesQueued ?? 0,
      };
    };
    const idle = async (): Promise<boolean> => {
      const s = await state.snapshot();
      return (
        s.pendingKeys === 0 &&
        s.batchesInFlight === 0 &&
        (await env.redis.llen(list)) === 0 &&
        (await env.redis.llen(`${list}:processing`)) === 0
      );
    };

    // burst 1: the points appear
    const before1 = await env.simStats();
    const counts1 = await counts();
    const seen = new Map<string, number>();
    let peakLag = 0;
    let stopWatch = false;
    let eventsInAt: number | undefined;
    let burstStart = 0;
    const watch = (async () => {
      while (!stopWatch) {
        const now = performance.now();
        const exists = (await qdrant.collectionExists(collection)).exists;
        if (exists) {
          let offset: string | number | undefined;
          do {
            const page = await qdrant.scroll(collection, {
              limit: 1000,
              with_payload: ['key', 'etag'],
              with_vector: false,
              filter: { must: [{ key: 'chunk', match: { value: 0 } }] },
              ...(offset !== undefined ? { offset } : {}),
            });
            for (const p of page.points) {
              const key = String(p.payload?.key);
              const put = putAt.get(key);
              if (put && !seen.has(key) && p.payload?.etag === put.etag) seen.set(key, now);
            }
            const nextOffset = page.next_page_offset;
            offset = typeof nextOffset === 'string' || typeof nextOffset === 'number' ? nextOffset : undefined;
          } while (offset !== undefined);
        }
        const snap = await state.snapshot();
        peakLag = Math.max(peakLag, snap.lagSeconds);
        if (eventsInAt === undefined && (snap.counts['events:redis:created'] ?? 0) - counts1.events >= objects)
          eventsInAt = performance.now();
        await sleep(200);
      }
    })();
    const putS = await (async () => {
      burstStart = performance.now();
      return putAll();
    })();
    const lastPut = Math.max(...[...putAt.values()].map((p) => p.t));
    log(`  listen: ${objects} PUTs in ${putS.toFixed(1)} s`);
    const deadline = performance.now() + 600_000;
    while (seen.size < objects && performance.now() < deadline) await sleep(200);
    const lastPoint = Math.max(...seen.values());
    const lagAtLastPoint = (await state.snapshot()).lagSeconds;
    while (!(await idle()) && performance.now() < deadline) await sleep(100);
    const lagZeroAt = performance.now();
    stopWatch = true;
    await watch;
    const lagAfterDrain = (await state.snapshot()).lagSeconds;
    const after1 = await env.simStats();
    const counts1b = await counts();
    const latencies = keys.flatMap((k) => (seen.has(k) ? [seen.get(k)! - putAt.get(k)!.t] : [])).sort((a, b) => a - b);
    if (latencies.length < objects)
      log(`  listen: only ${latencies.length} of ${objects} points seen within the deadline`);
    const burst1: ListenBurst = {
      label: `${objects} PUTs of new objects`,
      puts: objects,
      events: counts1b.events - counts1.events,
      requests: after1.requests - before1.requests,
      requestsPerEvent: (after1.requests - before1.requests) / Math.max(1, counts1b.events - counts1.events),
      inputs: after1.inputs - before1.inputs,
    };

    // burst 2: the same objects again, unchanged: resolved by HEAD, nothing embedded
    putAt.clear();
    const counts2 = await counts();
    await putAll();
    // wait for MinIO's pushes of this burst and the batches they make
    while (((await counts()).events - counts2.events < objects || !(await idle())) && performance.now() < deadline)
      await sleep(200);
    const after2 = await env.simStats();
    const counts2b = await counts();
    const burst2: ListenBurst = {
      label: `${objects} PUTs of identical content (unchanged objects, as a duplicate delivery)`,
      puts: objects,
      events: counts2b.events - counts2.events,
      requests: after2.requests - after1.requests,
      requestsPerEvent: (after2.requests - after1.requests) / Math.max(1, counts2b.events - counts2.events),
      inputs: after2.inputs - after1.inputs,
    };
    const result: ListenResult = {
      ...base,
      putS,
      eventsInS: eventsInAt !== undefined ? (eventsInAt - burstStart) / 1000 : NaN,
      latencyMs: {
        p50: quantile(latencies, 0.5),
        p95: quantile(latencies, 0.95),
        max: latencies[latencies.length - 1] ?? NaN,
      },
      drainS: (lastPoint - lastPut) / 1000,
      peakLagS: peakLag,
      lagAtLastPointS: lagAtLastPoint,
      lagZeroAfterS: (lagZeroAt - lastPoint) / 1000,
      lagAfterDrainS: lagAfterDrain,
      bursts: [burst1, burst2],
      batches: counts2b.batchesQueued,
    };
    log(
      `  listen: latency p50 ${(result.latencyMs.p50 / 1000).toFixed(2)} s, p95 ${(result.latencyMs.p95 / 1000).toFixed(2)} s; requests/event ${burst1.requestsPerEvent.toFixed(3)} then ${burst2.requestsPerEvent.toFixed(3)}; peak lag ${peakLag.toFixed(1)} s, ${lagAfterDrain.toFixed(1)} s after the drain`,
    );
    if (verbose) for (const p of procs) log(p.output());
    return result;
  } finally {
    await Promise.all(procs.map((p) => p.stop('SIGTERM')));
    await env.redis.del(list, `${list}:processing`).catch(() => 0);
    await minio.close();
    await rm(queueDir, { recursive: true, force: true });
  }
}

const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : String(x));

/** The scenario's section of results.md. */
export function listenMarkdown(r: ListenResult | undefined): string[] {
  if (!r) return [];
  const out = ['## Scenario 7: bucket events (`mm-ingest listen`, MinIO Redis target)', ''];
  if (r.skipped) return [...out, `Skipped: ${r.skipped}.`, ''];
  out.push(
    `${r.objects.toLocaleString('en-US')} PUTs in ${f(r.putS, 1)} s, their events all recorded ${f(r.eventsInS, 1)} s after the first; batches of at most ${r.batchKeys} keys or ${r.batchSeconds} s; ${r.rpm} RPM shared by 2 workers (the ceiling drains ${r.objects.toLocaleString('en-US')} objects in ${f(r.ceilingDrainS, 1)} s at 20 inputs a request). ${r.batches} reindex jobs in all.`,
    '',
    '| measure | value |',
    '|---|---|',
    `| event-to-point latency p50 / p95 / max | ${f(r.latencyMs.p50 / 1000)} s / ${f(r.latencyMs.p95 / 1000)} s / ${f(r.latencyMs.max / 1000)} s |`,
    `| last PUT to last point | ${f(r.drainS, 1)} s |`,
    `| listener lag: peak / at the last point / after the drain | ${f(r.peakLagS, 1)} s / ${f(r.lagAtLastPointS, 1)} s / ${f(r.lagAfterDrainS, 1)} s (0 ${f(r.lagZeroAfterS, 1)} s after the last point) |`,
    ...r.bursts.map(
      (b) =>
        `| ${b.label}: events, requests, requests per event, inputs | ${b.events}, ${b.requests}, ${f(b.requestsPerEvent, 3)}, ${b.inputs} |`,
    ),
    '',
  );
  return out;
}

// alone: a bench environment of its own, this scenario only, figures on stdout
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const settings = benchSettings(false);
  const n = Number(process.argv[process.argv.indexOf('--objects') + 1]) || 1000;
  const env = await startBenchEnv(settings.latency, JSON.stringify(settings.modelOverrides));
  try {
    const r = await listenScenario(env, settings, undefined, (s) => void process.stdout.write(`${s}\n`), n);
    process.stdout.write(`${listenMarkdown(r).join('\n')}\n${JSON.stringify(r, null, 2)}\n`);
  } finally {
    await env.close();
  }
  process.exit(0);
}
