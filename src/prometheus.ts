/**
 * The Prometheus side of `PipelineMetrics`: counters and a latency histogram fed by the
 * API caller, queue depths read from BullMQ at scrape time, and Node's process metrics;
 * plus the small HTTP server a worker exposes them on (`GET /metrics`).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { Registry } from 'prom-client';
import type { Queue } from 'bullmq';
import type { PipelineMetrics } from './metrics.js';

/** What the queue gauge needs of a BullMQ queue (any queue, whatever its job data). */
export type CountedQueue = Pick<Queue, 'name' | 'getJobCounts'>;

/**
 * The states a job can be in (a paused queue's jobs stay `waiting` in BullMQ 6); every one
 * gets a line, zeros included, so a graph shows 0 rather than a gap.
 */
export const JOB_STATES = [
  'waiting',
  'active',
  'delayed',
  'prioritized',
  'waiting-children',
  'completed',
  'failed',
] as const;

/**
 * Seconds: from a small request answered at once to half the default 120 s timeout (slower
 * ones land in +Inf); finest around 0.5..5 s, where a healthy request's latency falls.
 */
export const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60];

export interface PrometheusOptions {
  /** Queues whose job counts are read at each scrape. @defaultValue none */
  readonly queues?: readonly CountedQueue[];
  /** Node's process metrics (CPU, memory, event loop lag, GC). @defaultValue true */
  readonly defaultMetrics?: boolean;
}

export function createPrometheusMetrics(registry: Registry, options: PrometheusOptions = {}): PipelineMetrics {
  const registers = [registry];
  const requests = new Counter({
    name: 'mm_ingest_requests_total',
    help: 'HTTP requests to the embedding API, by outcome (ok, or the error decision) and provider code',
    labelNames: ['model', 'outcome', 'code'] as const,
    registers,
  });
  const duration = new Histogram({
    name: 'mm_ingest_request_duration_seconds',
    help: 'Duration of one HTTP request to the embedding API, whatever its outcome',
    labelNames: ['model'] as const,
    buckets: DURATION_BUCKETS,
    registers,
  });
  const inputs = new Counter({
    name: 'mm_ingest_inputs_total',
    help: 'Inputs embedded (text chunks, images, videos, groups)',
    labelNames: ['model'] as const,
    registers,
  });
  const tokens = new Counter({
    name: 'mm_ingest_tokens_total',
    help: "Input tokens billed, from the API's usage",
    labelNames: ['model', 'kind'] as const,
    registers,
  });
  const retries = new Counter({
    name: 'mm_ingest_retries_total',
    help: 'API requests sent again after a transient failure',
    labelNames: ['model'] as const,
    registers,
  });
  const waits = new Counter({
    name: 'mm_ingest_rate_limit_wait_seconds_total',
    help: 'Time spent waiting for the shared rate limiter or after a 429',
    labelNames: ['model'] as const,
    registers,
  });

  const lateWakes = new Counter({
    name: 'mm_ingest_rate_limit_late_wakes_total',
    help: 'Requests that woke up too late for their reserved send time (a busy event loop or machine) and gave it back for a later one',
    labelNames: ['model'] as const,
    registers,
  });

  const learned = new Gauge({
    name: 'mm_ingest_rate_limit_learned_rpm',
    help: "Requests per minute the shared limiter paces a model at before its margin: the believed (configured or documented) RPM, or less when 429s showed the account's quota lower",
    labelNames: ['model'] as const,
    registers,
  });
  const margin = new Gauge({
    name: 'mm_ingest_rate_limit_margin',
    help: "The shared limiter's margin under the learned rate (0.025 = 2.5%)",
    labelNames: ['model'] as const,
    registers,
  });

  const queues = options.queues ?? [];
  if (queues.length > 0) {
    new Gauge({
      name: 'mm_ingest_queue_jobs',
      help: 'Jobs in a BullMQ queue by state, read at scrape time',
      labelNames: ['queue', 'state'] as const,
      registers,
      async collect() {
        // read fresh at every scrape: a value kept from an earlier scrape would hide a Redis outage
        this.reset();
        const counts = await Promise.all(queues.map((q) => q.getJobCounts(...JOB_STATES).catch(() => undefined)));
        queues.forEach((q, i) => {
          const c = counts[i];
          if (c) for (const state of JOB_STATES) this.set({ queue: q.name, state }, c[state] ?? 0);
        });
      },
    });
  }
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });

  return {
    request(model, outcome, code, seconds) {
      requests.inc({ model, outcome, code });
      duration.observe({ model }, seconds);
    },
    embedded(model, n, textTokens, imageTokens) {
      inputs.inc({ model }, n);
      // inc(0) still creates the series: both kinds are present from the first request on
      tokens.inc({ model, kind: 'text' }, textTokens);
      tokens.inc({ model, kind: 'image' }, imageTokens);
    },
    retry(model) {
      retries.inc({ model });
    },
    rateLimitWait(model, seconds) {
      waits.inc({ model }, seconds);
    },
    rateLimitLateWake(model) {
      lateWakes.inc({ model });
    },
    rateLimitState(model, rpm, m) {
      learned.set({ model }, rpm);
      margin.set({ model }, m);
    },
  };
}

export interface MetricsServer {
  readonly port: number;
  /** The address it listens on. */
  readonly host: string;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` on `port` (0: any free port) on `host`: loopback unless told
 * otherwise, since the metrics name queues, models and volumes, and nothing asks who
 * scrapes them; a Prometheus on another machine needs `METRICS_HOST` (0.0.0.0, or the
 * interface it reaches).
 */
export async function startMetricsServer(port: number, registry: Registry, host = '127.0.0.1'): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (body) =>
        res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : body),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    host,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // a scraper's keep-alive connection would otherwise hold close() open until it times out
        server.closeAllConnections();
      }),
  };
}
