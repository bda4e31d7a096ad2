/**
 * The worker's Prometheus endpoint, as Prometheus sees it: `mm-ingest worker
 * --metrics-port 0` as a real process indexes a bucket through the API simulator (which
 * answers some requests 503), then `/metrics` is scraped and checked against the
 * simulator's own counts and the run's record.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:net';
import { Queue } from 'bullmq';
import { RunStore } from '../../src/runs.js';
import type { RunState } from '../../src/runs.js';
import { prose } from '../support/corpus.js';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { BackgroundCli, PipelineEnv } from '../support/pipeline.js';
import { createBucket, putObject } from '../support/s3.js';

const BUCKET = 'metrics';
const MODEL = 'qwen3-vl-embedding';
const TEXTS = 30;

/** `name{labels}` -> value, from Prometheus' text format. */
function parseSamples(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    samples.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return samples;
}

/** The sum of every series of a metric whose labels include `match`. */
function total(samples: ReadonlyMap<string, number>, name: string, match = ''): number {
  let sum = 0;
  for (const [series, value] of samples) if (series.startsWith(`${name}{`) && series.includes(match)) sum += value;
  return sum;
}

async function takenPort(): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer();
  // every interface, as the metrics server binds
  await new Promise<void>((resolve) => server.listen(0, resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { port: address.port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('the worker serves Prometheus metrics', () => {
  let env: PipelineEnv;
  let worker: BackgroundCli | undefined;
  let metricsUrl: string;
  let run: RunState;

  beforeAll(async () => {
    // some 503s, so the error outcome and the retry counter are exercised too
    env = await startPipelineEnv({ faults: { seed: 7, error503Rate: 0.3 }, latency: { fixedMs: 20, jitterMs: 40 } });
    env.env.API_BACKOFF_MS = '20';
    // every 503 must be retried inside its call for the counts below to match: with 30%
    // faults, 6 attempts (the default) run out about once in 500 requests; 20 never do
    env.env.API_ATTEMPTS = '20';
    await createBucket(env.s3client, BUCKET);
    for (let i = 0; i < TEXTS; i++)
      await putObject(env.s3client, BUCKET, `docs/${String(i).padStart(2, '0')}.txt`, prose(i + 1, 40 + i * 4));

    worker = startCli(['worker', '--metrics-port', '0', '--concurrency', '2'], env.env);
    await worker.waitFor(/metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/);
    metricsUrl = /metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(worker.output())?.[1] ?? '';

    // small chunks: about 180 inputs, so the run takes a dozen requests rather than two
    const indexed = await runCli(
      [
        'index',
        '--bucket',
        BUCKET,
        '--collection',
        `metrics-${env.prefix}`,
        '--model',
        MODEL,
        '--dimension',
        '256',
        '--chunk-tokens',
        '32',
        '--wait',
      ],
      env.env,
    );
    expect(indexed.code).toBe(0);
    const runId = /run (\S+): scanning/.exec(indexed.stdout)?.[1] ?? '';
    run = (await new RunStore(env.redis, env.prefix).get(runId))!;
    expect(run.counters.objectsIndexed).toBe(TEXTS);
  }, 180_000);

  afterAll(async () => {
    if (worker) await worker.stop('SIGTERM');
    await env?.close();
  });

  async function scrape(): Promise<Map<string, number>> {
    const res = await fetch(metricsUrl);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return parseSamples(await res.text());
  }

  it('counts every request the simulator answered, by outcome, with its latency', async () => {
    const sim = env.sim.stats();
    const samples = await scrape();
    expect(sim.accepted).toBeGreaterThan(5);
    expect(samples.get(`mm_ingest_requests_total{model="${MODEL}",outcome="ok",code=""}`)).toBe(sim.accepted);
    // the 503s: counted with their decision and code, and they are all the simulator refused
    expect(sim.faults.error503).toBeGreaterThan(0);
    expect(total(samples, 'mm_ingest_requests_total', 'outcome="retryable"')).toBe(sim.faults.error503);
    expect(total(samples, 'mm_ingest_requests_total')).toBe(sim.requests);
    // each 503 was sent again (none ran out of attempts), as the run's record counts too
    expect(samples.get(`mm_ingest_retries_total{model="${MODEL}"}`)).toBe(run.counters.retries);
    expect(run.counters.retries).toBe(sim.faults.error503);
    // the histogram observes every request, whatever its outcome
    const count = samples.get(`mm_ingest_request_duration_seconds_count{model="${MODEL}"}`);
    expect(count).toBe(sim.requests);
    expect(samples.get(`mm_ingest_request_duration_seconds_bucket{le="+Inf",model="${MODEL}"}`)).toBe(count);
    expect(samples.get(`mm_ingest_request_duration_seconds_bucket{le="0.05",model="${MODEL}"}`)).toBeLessThan(
      count ?? 0,
    );
    expect(samples.get(`mm_ingest_request_duration_seconds_sum{model="${MODEL}"}`)).toBeGreaterThan(
      0.02 * (count ?? 0),
    );
  });

  it('counts the inputs and billed tokens as the simulator reported them', async () => {
    const sim = env.sim.stats();
    const samples = await scrape();
    expect(samples.get(`mm_ingest_inputs_total{model="${MODEL}"}`)).toBe(sim.inputs);
    expect(sim.inputs).toBeGreaterThan(TEXTS);
    expect(samples.get(`mm_ingest_tokens_total{model="${MODEL}",kind="text"}`)).toBe(sim.textTokens);
    expect(samples.get(`mm_ingest_tokens_total{model="${MODEL}",kind="text"}`)).toBe(run.counters.textTokens);
    expect(samples.get(`mm_ingest_tokens_total{model="${MODEL}",kind="image"}`)).toBe(0);
  });

  it("reads the queues' job counts at scrape time", async () => {
    const samples = await scrape();
    // completed jobs are kept an hour (1,000 at most), so the run's jobs are all there
    expect(samples.get('mm_ingest_queue_jobs{queue="embed",state="completed"}')).toBe(run.counters.jobsAdded);
    expect(run.counters.jobsAdded).toBeGreaterThan(0);
    for (const state of ['waiting', 'active', 'delayed', 'failed'])
      expect(samples.get(`mm_ingest_queue_jobs{queue="embed",state="${state}"}`)).toBe(0);
    expect(samples.get('mm_ingest_queue_jobs{queue="reindex",state="waiting"}')).toBe(0);

    // a job added now shows at the next scrape (delayed an hour, so the worker leaves it alone)
    const reindex = new Queue('reindex', { connection: env.redis, prefix: env.prefix });
    try {
      const job = await reindex.add('later', { bucket: BUCKET }, { delay: 3_600_000 });
      const after = await scrape();
      expect(after.get('mm_ingest_queue_jobs{queue="reindex",state="delayed"}')).toBe(1);
      await job.remove();
    } finally {
      await reindex.close();
    }
  });

  it("also serves the process's own metrics, and nothing but /metrics", async () => {
    const samples = await scrape();
    expect(samples.get('process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(total(samples, 'nodejs_heap_space_size_used_bytes')).toBeGreaterThan(0);
    const other = await fetch(metricsUrl.replace(/\/metrics$/, '/'));
    expect(other.status).toBe(404);
    await other.text();
  });

  it('refuses a metrics port that is already taken, naming the flag', async () => {
    const taken = await takenPort();
    try {
      const second = await runCli(['worker', '--metrics-port', String(taken.port), '--no-reindex'], env.env);
      expect(second.code).toBe(2);
      expect(second.stderr).toMatch(
        new RegExp(`configuration error: --metrics-port: cannot serve metrics on port ${taken.port}: .*EADDRINUSE`),
      );
      expect(second.stdout).not.toMatch(/worker ready/);
    } finally {
      await taken.close();
    }
  });
});
