/**
 * Configuration: environment variables and command-line flags with the same meaning,
 * parsed once into a typed, frozen object. A flag wins over its variable. A wrong value
 * is reported by the name the user gave it (variable or flag) before any work starts.
 */
import { z } from 'zod';
import { DEFAULT_BASE_URL } from './api.js';
import { DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_TEXT_BYTES } from './bounds.js';
import type { ReadBounds } from './bounds.js';
import { ConfigError } from './errors.js';
import { RATE_LIMIT_SETTINGS, rateLimitConflict } from './config-rate-limit.js';
import type { RateLimitConfig } from './config-rate-limit.js';
import { parseModelOverrides } from './models.js';
import { redact, rememberSecrets, urlPassword } from './redact.js';
import type { ModelOverrides } from './models.js';
import { DEFAULT_MAX_BODY_BYTES } from './plan-limits.js';
import { DEFAULT_LIST_AHEAD } from './list-thread.js';

/** One setting: its variable, its flag (commander's camelCase key and the --name), its schema. */
interface Setting<T> {
  readonly env: string;
  readonly flag?: string;
  readonly schema: z.ZodType<T>;
  /** A key or token: a malformed value is described by its length, never echoed. */
  readonly secret?: boolean;
}

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number) => z.coerce.number().int().min(min);
const url = z.string().url();
/** A host name, an IPv4 or an IPv6 address (without brackets). */
const host = z
  .string()
  .regex(
    /^([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$/,
    'must be a host name or an IP address, such as 127.0.0.1 or 0.0.0.0',
  );

const SETTINGS = {
  /** The API key; only processes that call the API need it. */
  apiKey: { env: 'DASHSCOPE_API_KEY', schema: z.string().min(1).optional(), secret: true },
  /** @defaultValue https://dashscope.aliyuncs.com (Beijing) */
  baseUrl: { env: 'DASHSCOPE_BASE_URL', flag: 'baseUrl', schema: url.default(DEFAULT_BASE_URL) },
  /** @defaultValue 120000 */
  requestTimeoutMs: { env: 'REQUEST_TIMEOUT_MS', schema: int(1000).default(120_000) },
  /**
   * `on`: a worker sends its API requests from a thread of their own, so each leaves at its
   * rate-limit slot however busy the worker is (send-thread.ts); `off`: from the worker's
   * event loop. @defaultValue on
   */
  sendThread: { env: 'SEND_THREAD', schema: z.enum(['on', 'off']).default('on') },
  /**
   * One Redis URL; with `redisCluster`, one or more seed nodes of the cluster, comma-separated
   * (any one is enough to discover the others). @defaultValue redis://127.0.0.1:6379
   */
  redisUrl: {
    env: 'REDIS_URL',
    flag: 'redisUrl',
    schema: z
      .string()
      .regex(
        /^rediss?:\/\/[^,\s]+(,rediss?:\/\/[^,\s]+)*$/,
        'must be a redis:// or rediss:// URL (for a cluster: several, comma-separated)',
      )
      .default('redis://127.0.0.1:6379'),
  },
  /** `true`: REDIS_URL names nodes of a Redis Cluster (ioredis `Cluster`); QUEUE_PREFIX then needs a hash tag. @defaultValue false */
  redisCluster: { env: 'REDIS_CLUSTER', flag: 'redisCluster', schema: bool.default(false) },
  /**
   * Prefix of every Redis key; may hold one hash tag (`{mm-ingest}`), which a cluster
   * requires so that every key of a queue and of a run lands in one slot. @defaultValue mm-ingest
   */
  queuePrefix: {
    env: 'QUEUE_PREFIX',
    flag: 'queuePrefix',
    schema: z
      .string()
      .regex(
        /^[A-Za-z0-9_.-]*(\{[A-Za-z0-9_.-]+\})?[A-Za-z0-9_.-]*$/,
        'letters, digits, _ . - and at most one hash tag such as {mm-ingest}',
      )
      .refine((s) => s.length > 0, 'must not be empty')
      .default('mm-ingest'),
  },
  /**
   * How long a command waits for Redis, S3 or Qdrant to answer before it gives up (exit 2,
   * one line naming the service); a worker logs a lost Redis once per this interval while
   * it retries. @defaultValue 10000
   */
  connectTimeoutMs: { env: 'CONNECT_TIMEOUT_MS', schema: int(100).default(10_000) },
  /** @defaultValue http://127.0.0.1:6333 */
  qdrantUrl: { env: 'QDRANT_URL', flag: 'qdrantUrl', schema: url.default('http://127.0.0.1:6333') },
  qdrantApiKey: { env: 'QDRANT_API_KEY', schema: z.string().min(1).optional(), secret: true },
  /** Empty means AWS itself. */
  s3Endpoint: { env: 'S3_ENDPOINT', flag: 's3Endpoint', schema: z.union([z.literal(''), url]).default('') },
  awsRegion: { env: 'AWS_REGION', schema: z.string().min(1).default('us-east-1') },
  /** @defaultValue false (true is needed for MinIO and most S3-compatible stores) */
  s3ForcePathStyle: { env: 'S3_FORCE_PATH_STYLE', schema: bool.default(false) },
  /**
   * Pages a scan's listing thread lists ahead of the pages being queued (list-thread.ts);
   * 0: no thread, the producer lists one page ahead itself. @defaultValue 2
   */
  listAheadPages: { env: 'LIST_AHEAD_PAGES', schema: int(0).max(16).default(DEFAULT_LIST_AHEAD) },
  /** How images reach the API: inline base64 (default; works for private buckets) or presigned URLs. */
  imageMode: { env: 'IMAGE_MODE', flag: 'imageMode', schema: z.enum(['inline', 'url']).default('inline') },
  /**
   * `true`: send presigned URLs of a store on a loopback or private address (the API can
   * reach it: a local simulator, an endpoint in the same network). Otherwise URL mode is
   * refused at start and videos are skipped (media-urls.ts). @defaultValue false
   */
  allowPrivateMediaUrls: { env: 'ALLOW_PRIVATE_MEDIA_URLS', schema: bool.default(false) },
  /** @defaultValue 3600 */
  presignSeconds: { env: 'PRESIGN_SECONDS', schema: int(60).default(3600) },
  /** @defaultValue 6291456 (6 MiB) */
  maxRequestBytes: { env: 'MAX_REQUEST_BYTES', schema: int(1024).default(DEFAULT_MAX_BODY_BYTES) },
  /** Largest text read: bigger ones are skipped at scan (`too-large`). @defaultValue 16777216 (16 MiB; bounds.ts says why) */
  maxTextBytes: { env: 'MAX_TEXT_BYTES', schema: int(1).default(DEFAULT_MAX_TEXT_BYTES) },
  /** Largest image read: bigger ones are skipped at scan (`too-large`). @defaultValue 67108864 (64 MiB; bounds.ts says why) */
  maxImageBytes: { env: 'MAX_IMAGE_BYTES', schema: int(1).default(DEFAULT_MAX_IMAGE_BYTES) },
  /** Largest text chunk in tokens; default: the model's text limit. */
  chunkTokens: { env: 'CHUNK_TOKENS', flag: 'chunkTokens', schema: int(16).optional() },
  /** @defaultValue 0 */
  chunkOverlap: { env: 'CHUNK_OVERLAP', flag: 'chunkOverlap', schema: int(0).default(0) },
  /** Jobs a worker process runs at once. @defaultValue 4 */
  concurrency: { env: 'WORKER_CONCURRENCY', flag: 'concurrency', schema: int(1).default(4) },
  /**
   * Most jobs the embed queue holds waiting before the producer pauses its listing (it
   * goes on as the workers take them); 0: no bound. @defaultValue half a minute of the
   * model's requests at its rate limit, at least 4 x WORKER_CONCURRENCY and at least 100 (backpressure.ts)
   */
  maxQueuedJobs: { env: 'MAX_QUEUED_JOBS', schema: int(0).optional() },
  /** Days a finished run's records (counters, failures, skips) are kept in Redis. @defaultValue 30 */
  runRetentionDays: { env: 'RUN_RETENTION_DAYS', schema: int(1).default(30) },
  /** Objects fetched at once inside a job. @defaultValue 8 */
  fetchConcurrency: { env: 'FETCH_CONCURRENCY', schema: int(1).default(8) },
  ...RATE_LIMIT_SETTINGS,
  /** Attempts of one API request for transient failures. @defaultValue 6 */
  apiAttempts: { env: 'API_ATTEMPTS', schema: int(1).default(6) },
  /** First backoff between those attempts; doubles, randomized. @defaultValue 500 */
  apiBackoffMs: { env: 'API_BACKOFF_MS', schema: int(1).default(500) },
  /** How long one request may keep meeting 429s before the run is paused as out of quota. @defaultValue 1800000 (30 minutes) */
  quotaPauseAfterMs: { env: 'QUOTA_PAUSE_AFTER_MS', schema: int(1000).default(30 * 60_000) },
  /** How long a job's lock lives without renewal: a crashed worker's jobs are picked up again after it. @defaultValue 30000 */
  lockDurationMs: { env: 'LOCK_DURATION_MS', schema: int(1000).default(30_000) },
  /** How long SIGTERM waits for jobs in flight before leaving them to stalled-job recovery. @defaultValue 120000 */
  drainTimeoutMs: { env: 'DRAIN_TIMEOUT_MS', schema: int(0).default(120_000) },
  /** The worker's Prometheus port (`GET /metrics`); unset: no server; 0: any free port. */
  metricsPort: { env: 'METRICS_PORT', flag: 'metricsPort', schema: int(0).max(65_535).optional() },
  /** The interface the metrics server listens on; 0.0.0.0 for every one (a Prometheus on another machine). @defaultValue 127.0.0.1 */
  metricsHost: { env: 'METRICS_HOST', flag: 'metricsHost', schema: host.default('127.0.0.1') },
  /**
   * The dashboard's token: required of every request when set, and to listen beyond
   * loopback at all (Bull Board can remove and retry jobs). @defaultValue none
   */
  dashboardToken: {
    env: 'DASHBOARD_TOKEN',
    schema: z.string().min(16, 'must be at least 16 characters').optional(),
    secret: true,
  },
  /** Host names (`name` or `name:port`) the dashboard answers besides its own address, comma-separated. @defaultValue none */
  dashboardAllowedHosts: {
    env: 'DASHBOARD_ALLOWED_HOSTS',
    schema: z
      .string()
      .regex(/^[A-Za-z0-9.:[\]_-]+(,[A-Za-z0-9.:[\]_-]+)*$/, 'must be host names or host:port, comma-separated')
      .transform((v) => v.split(','))
      .optional(),
  },
  /** The bearer token MinIO's webhook target must send to `mm-ingest listen --webhook-port` (required with it). */
  listenWebhookToken: {
    env: 'LISTEN_WEBHOOK_TOKEN',
    schema: z.string().min(16, 'must be at least 16 characters').optional(),
    secret: true,
  },
  /** The listener's batches hold at most this many keys (one reindex job each). @defaultValue 500 */
  listenBatchKeys: { env: 'LISTEN_BATCH_KEYS', flag: 'batchKeys', schema: int(1).max(10_000).default(500) },
  /** A pending key waits at most this many seconds for others to join its batch. @defaultValue 2 */
  listenBatchSeconds: {
    env: 'LISTEN_BATCH_SECONDS',
    flag: 'batchSeconds',
    schema: z.coerce.number().min(0).max(3600).default(2),
  },
  modelOverrides: { env: 'MODEL_OVERRIDES', flag: 'modelOverrides', schema: z.string().optional() },
  /** @defaultValue info */
  logLevel: {
    env: 'LOG_LEVEL',
    flag: 'logLevel',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  },
} satisfies Record<string, Setting<unknown>>;

type Settings = typeof SETTINGS;
export type Config = { readonly [K in keyof Settings]: z.output<Settings[K]['schema']> } & {
  readonly models: ModelOverrides;
};

const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The variables and flags of every setting, for the README and `--help`. */
export const CONFIG_VARIABLES = Object.values(SETTINGS).map((s) => s.env);

/**
 * Parses the settings from `env`, with `flags` (commander's parsed options) winning.
 * Throws a ConfigError naming the variable or flag at fault.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  flags: Readonly<Record<string, unknown>> = {},
): Config {
  const out: Record<string, unknown> = {};
  const sources: Record<string, string> = {};
  const defaulted = new Set<string>();
  for (const [name, setting] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    const fromFlag = setting.flag !== undefined ? flags[setting.flag] : undefined;
    const raw = fromFlag !== undefined ? String(fromFlag) : env[setting.env];
    const source = fromFlag !== undefined ? `--${kebab(setting.flag ?? name)}` : setting.env;
    const parsed = setting.schema.safeParse(raw === '' && setting.env !== 'S3_ENDPOINT' ? undefined : raw);
    if (!parsed.success) {
      const got = setting.secret ? `${raw?.length ?? 0} characters` : `"${redact(raw ?? '')}"`;
      throw new ConfigError(source, `${parsed.error.issues[0]?.message ?? 'invalid'} (got ${got})`);
    }
    out[name] = parsed.data;
    sources[name] = source;
    if (raw === undefined || raw === '') defaulted.add(name);
  }
  // every message from now on is cleaned of them (redact.ts), whoever writes it
  rememberSecrets(
    out.apiKey as string | undefined,
    out.qdrantApiKey as string | undefined,
    out.dashboardToken as string | undefined,
    out.listenWebhookToken as string | undefined,
    env.AWS_SECRET_ACCESS_KEY,
    env.AWS_SESSION_TOKEN,
    ...urlPassword(out.redisUrl as string),
    ...urlPassword(out.qdrantUrl as string),
    ...urlPassword(out.s3Endpoint as string),
    ...urlPassword(out.baseUrl as string),
  );
  checkRedisTopology(out, sources, defaulted);
  const conflict = rateLimitConflict(out as RateLimitConfig);
  if (conflict) throw new ConfigError(...conflict);
  const models = parseModelOverrides(
    out.modelOverrides as string | undefined,
    flags.modelOverrides !== undefined ? '--model-overrides' : 'MODEL_OVERRIDES',
  );
  return Object.freeze({ ...out, models }) as Config;
}

/** The read bounds of a configuration (MAX_TEXT_BYTES, MAX_IMAGE_BYTES). */
export function readBounds(config: Pick<Config, 'maxTextBytes' | 'maxImageBytes'>): ReadBounds {
  return { maxTextBytes: config.maxTextBytes, maxImageBytes: config.maxImageBytes };
}

/** True when the prefix holds a Redis hash tag: `{`, at least one character, `}`. */
export function hasHashTag(prefix: string): boolean {
  return /\{[^{}]+\}/.test(prefix);
}

/**
 * Settings that only make sense together. Several seed nodes are a cluster. On a cluster,
 * BullMQ's scripts and ours touch several keys of a queue or a run at once, which a cluster
 * allows only within one slot: the prefix's hash tag puts them all in one.
 */
function checkRedisTopology(
  out: Record<string, unknown>,
  sources: Readonly<Record<string, string>>,
  defaulted: ReadonlySet<string>,
): void {
  const url = out.redisUrl as string;
  const prefix = out.queuePrefix as string;
  if (!out.redisCluster) {
    if (url.includes(','))
      throw new ConfigError(
        sources.redisUrl ?? 'REDIS_URL',
        `lists several nodes; for a Redis Cluster set REDIS_CLUSTER=true (got "${redact(url)}")`,
      );
    return;
  }
  if (!hasHashTag(prefix)) {
    throw new ConfigError(
      sources.queuePrefix ?? 'QUEUE_PREFIX',
      `on a Redis Cluster (${sources.redisCluster ?? 'REDIS_CLUSTER'}) the prefix needs a hash tag so that every key of a queue and of a run lands in one slot: use "{${prefix.replace(/[{}]/g, '')}}" (got "${prefix}"${defaulted.has('queuePrefix') ? ', the default' : ''})`,
    );
  }
}

/** The API key, or a ConfigError saying where to put it. */
export function requireApiKey(config: Config): string {
  if (!config.apiKey)
    throw new ConfigError('DASHSCOPE_API_KEY', 'is not set (the worker needs the API key to call the embedding API)');
  return config.apiKey;
}
