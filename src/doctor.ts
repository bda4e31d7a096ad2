/**
 * `mm-ingest doctor`: the checks an operator runs before leaving a run overnight. Each
 * check asks one outside system one cheap question (Redis INFO, one listing page and one
 * byte of one object, a collection's description, a one-word embedding) within a bounded
 * time, and turns the answer, or the failure, into a row: ok, warn (the run works but
 * something is at risk), fail (the run would not work), or skip (not checked, and why),
 * each with what to do. Pure logic over narrow clients; the command wires real ones.
 */
import { EmbeddingApiError } from './errors.js';
import type { Embedder } from './embedder.js';
import { PRIVATE_MEDIA_VARIABLE } from './media-urls.js';
import { estimateCost } from './models.js';
import type { ModelSpec } from './models.js';
import { ObjectStoreError } from './object-store.js';
import type { ObjectStore } from './object-store.js';
import { requestParameters } from './request-body.js';
import { VECTOR_DISTANCE } from './qdrant-store.js';
import type { QdrantStore } from './qdrant-store.js';
import { maskUrl, redact, urlPassword } from './redact.js';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckRow {
  readonly check: string;
  readonly status: CheckStatus;
  readonly detail: string;
  /** What to do about it; empty for an ok row. */
  readonly action: string;
  /** What was measured, for `--json` (versions, policies, tokens, cost). */
  readonly facts?: Readonly<Record<string, string | number | boolean>>;
}

/** The Redis command the checks use: INFO's default sections (server, memory, persistence). */
export interface DoctorRedis {
  info(): Promise<string>;
}

export interface DoctorClients {
  readonly redis: DoctorRedis;
  readonly objects: Pick<ObjectStore, 'listPage' | 'get'>;
  readonly vectors: Pick<QdrantStore, 'describeCollection'>;
  /** undefined when no API key is configured. */
  readonly embedder: Embedder | undefined;
}

export interface DoctorTarget {
  /** Where each service is, secrets already masked: these are printed. */
  readonly redisUrl: string;
  readonly s3Endpoint: string;
  readonly qdrantUrl: string;
  readonly baseUrl: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly collection: string;
  readonly model: ModelSpec;
  readonly dimension: number;
  /** false: `--no-api`, no request is sent. */
  readonly api: boolean;
  /** Bound of each check's question. */
  readonly timeoutMs: number;
  /** Whether the provider can download the store's presigned URLs (media-urls.ts); no row when absent. */
  readonly mediaUrls?: {
    /** Why it cannot (privateEndpointReason), or undefined. */
    readonly reason: string | undefined;
    readonly imageMode: 'inline' | 'url';
    /** ALLOW_PRIVATE_MEDIA_URLS=true */
    readonly allowed: boolean;
  };
}

/** BullMQ's own minimum. */
export const MIN_REDIS_VERSION = [6, 2, 0] as const;
/** The one word the API check embeds. */
export const PROBE_WORD = 'ping';
/** Keys listed by the bucket check: enough to find a non-empty object to read. */
const LIST_PAGE = 100;

class CheckTimeout extends Error {
  override readonly name = 'CheckTimeout';
}

/** `promise`, or a CheckTimeout after `ms` (the work itself is not cancelled: the command exits). */
export async function bounded<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CheckTimeout(`no answer within ${seconds(ms)}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(1))} s`;
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
/** Drops the request id a message ends with: it differs on every call and helps no operator here. */
const withoutRequestId = (text: string): string => text.replace(/ \(request [^)]*\)$/, '');

/** Why a service gave no usable answer: it timed out, or the client's error. */
const unanswered = (where: string, err: unknown): string =>
  err instanceof CheckTimeout ? `${err.message} from ${where}` : `${where}: ${message(err)}`;

const row = (check: string, status: CheckStatus, detail: string, action = '', facts?: CheckRow['facts']): CheckRow =>
  facts === undefined ? { check, status, detail, action } : { check, status, detail, action, facts };

/** INFO's `key:value` lines as a map. */
export function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) out.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return out;
}

function versionAtLeast(version: string, min: readonly number[]): boolean {
  const parts = version.split('.').map((p) => Number.parseInt(p, 10) || 0);
  for (let i = 0; i < min.length; i++) {
    const have = parts[i] ?? 0;
    const need = min[i] ?? 0;
    if (have !== need) return have > need;
  }
  return true;
}

async function checkRedis(redis: DoctorRedis, t: DoctorTarget): Promise<CheckRow[]> {
  let info: Map<string, string>;
  try {
    info = parseInfo(await bounded(redis.info(), t.timeoutMs));
  } catch (err) {
    const skipped = 'not checked: Redis did not answer';
    return [
      row(
        'redis',
        'fail',
        unanswered(t.redisUrl, err),
        'start Redis, or fix REDIS_URL / --redis-url (and its password)',
      ),
      row('redis eviction', 'skip', skipped),
      row('redis persistence', 'skip', skipped),
    ];
  }
  const rows: CheckRow[] = [];
  const version = info.get('redis_version') ?? 'unknown';
  const mode = info.get('redis_mode');
  const where = `Redis ${version}${mode !== undefined && mode !== 'standalone' ? ` (${mode})` : ''} at ${t.redisUrl}`;
  rows.push(
    versionAtLeast(version, MIN_REDIS_VERSION)
      ? row('redis', 'ok', where, '', { version })
      : row(
          'redis',
          'fail',
          `${where}: BullMQ needs Redis >= ${MIN_REDIS_VERSION.join('.')}`,
          'upgrade Redis to 6.2 or later',
          { version },
        ),
  );

  const policy = info.get('maxmemory_policy');
  const maxmemory = info.get('maxmemory_human') ?? info.get('maxmemory');
  const limit =
    maxmemory === undefined || maxmemory === '0' || maxmemory === '0B' ? 'no maxmemory' : `maxmemory ${maxmemory}`;
  if (policy === undefined) {
    rows.push(
      row(
        'redis eviction',
        'warn',
        'INFO does not report maxmemory_policy',
        'make sure the server runs with maxmemory-policy noeviction (BullMQ needs it)',
      ),
    );
  } else if (policy === 'noeviction') {
    rows.push(row('redis eviction', 'ok', `maxmemory-policy noeviction, ${limit}`, '', { maxmemoryPolicy: policy }));
  } else {
    rows.push(
      row(
        'redis eviction',
        'fail',
        `maxmemory-policy ${policy} (${limit}): under memory pressure Redis deletes keys, queued jobs and BullMQ's own among them`,
        "set maxmemory-policy noeviction (redis-cli CONFIG SET maxmemory-policy noeviction, and in redis.conf or the managed service's parameters)",
        { maxmemoryPolicy: policy },
      ),
    );
  }

  const aof = info.get('aof_enabled');
  if (aof === '1') {
    rows.push(row('redis persistence', 'ok', 'AOF on', '', { aof: true }));
  } else {
    rows.push(
      row(
        'redis persistence',
        'warn',
        'AOF off: queued jobs and run records die with a Redis restart',
        "turn on AOF: redis-cli CONFIG SET appendonly yes, and appendonly yes in redis.conf (or the managed service's persistence setting)",
        { aof: false },
      ),
    );
  }
  return rows;
}

function s3Failure(check: string, err: unknown, t: DoctorTarget, permission: string): CheckRow {
  if (err instanceof CheckTimeout)
    return row(check, 'fail', unanswered(t.s3Endpoint, err), 'check S3_ENDPOINT / --s3-endpoint and the network');
  if (!(err instanceof ObjectStoreError))
    return row(check, 'fail', message(err), 'check the S3 settings (S3_ENDPOINT, AWS_REGION, credentials)');
  if (err.code === 'NoSuchBucket') {
    return row(
      check,
      'fail',
      `bucket "${t.bucket}" does not exist at ${t.s3Endpoint} (NoSuchBucket)`,
      'check --bucket, S3_ENDPOINT and AWS_REGION',
    );
  }
  switch (err.decision) {
    case 'fatal':
      return row(
        check,
        'fail',
        `refused: ${err.code}`,
        `check the credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE ...) and that they allow ${permission} on ${t.bucket}`,
      );
    case 'retryable':
      // Node's network codes (ECONNREFUSED, UND_ERR_SOCKET) against the store's own (SlowDown, 5xx)
      return /^(E[A-Z]+|UND_ERR_\w+)$/.test(err.code)
        ? row(
            check,
            'fail',
            `no answer from ${t.s3Endpoint}: ${err.code}`,
            'check S3_ENDPOINT / --s3-endpoint and the network',
          )
        : row(
            check,
            'fail',
            `the store answered ${err.code}`,
            'the store is throttling or failing: run doctor again later',
          );
    default:
      return row(
        check,
        'fail',
        withoutRequestId(err.message),
        'check --bucket, S3_ENDPOINT, AWS_REGION and S3_FORCE_PATH_STYLE',
      );
  }
}

async function checkBucket(objects: DoctorClients['objects'], t: DoctorTarget): Promise<CheckRow[]> {
  const where = `s3://${t.bucket}/${t.prefix}`;
  let page;
  try {
    page = await bounded(objects.listPage(t.bucket, t.prefix, undefined, LIST_PAGE), t.timeoutMs);
  } catch (err) {
    return [
      s3Failure('bucket', err, t, 's3:ListBucket'),
      row('object read', 'skip', 'not checked: the bucket could not be listed'),
    ];
  }
  const listed = `${page.objects.length}${page.nextToken !== undefined ? '+' : ''}`;
  if (page.objects.length === 0) {
    return [
      row(
        'bucket',
        'warn',
        `${where} lists no object: a run would index nothing`,
        'check --prefix (keys are case-sensitive and have no leading /)',
        { listed: 0 },
      ),
      row('object read', 'skip', 'not checked: no object to read'),
    ];
  }
  const objectsWord = listed === '1' ? 'object' : 'objects';
  const rows = [
    row('bucket', 'ok', `${where} lists (${listed} ${objectsWord} on the first page)`, '', {
      listed: page.objects.length,
    }),
  ];
  // One byte of the first non-empty object; a range on an empty one is a 416.
  const target = page.objects.find((o) => o.size > 0) ?? page.objects[0]!;
  try {
    const got = await bounded(objects.get(t.bucket, target.key, target.size > 0 ? [0, 0] : undefined), t.timeoutMs);
    rows.push(row('object read', 'ok', `read ${got.bytes.length} byte of ${target.key}`, '', { key: target.key }));
  } catch (err) {
    rows.push(s3Failure('object read', err, t, 's3:GetObject'));
  }
  return rows;
}

async function checkQdrant(vectors: DoctorClients['vectors'], t: DoctorTarget): Promise<CheckRow[]> {
  let layout;
  try {
    layout = await bounded(vectors.describeCollection(t.collection), t.timeoutMs);
  } catch (err) {
    const status = (err as { status?: unknown }).status;
    const action =
      status === 401 || status === 403 ? 'check QDRANT_API_KEY' : 'start Qdrant, or fix QDRANT_URL / --qdrant-url';
    // the store's message names the operation and collection: the row says where instead
    const why =
      err instanceof CheckTimeout
        ? err
        : new Error(message(err).replace(/^Qdrant \S+ on collection "[^"]*" failed: /, ''));
    return [
      row('qdrant', 'fail', unanswered(t.qdrantUrl, why), action),
      row('collection', 'skip', 'not checked: Qdrant did not answer'),
    ];
  }
  const rows = [row('qdrant', 'ok', `answers at ${t.qdrantUrl}`)];
  const makes = `${t.model.name} at dimension ${t.dimension} makes ${t.dimension}-dim vectors`;
  const name = `"${t.collection}"`;
  if (layout === undefined) {
    rows.push(
      row(
        'collection',
        'ok',
        `${name} does not exist yet: index creates it (${t.dimension}-dim, ${VECTOR_DISTANCE}, one unnamed vector)`,
        '',
        { exists: false },
      ),
    );
  } else if (layout.vectors === 'named') {
    rows.push(
      row(
        'collection',
        'fail',
        `${name} has named vectors (${layout.names.join(', ')}); this tool writes one unnamed vector a point`,
        'use another --collection',
        { exists: true },
      ),
    );
  } else if (layout.vectors === 'none') {
    rows.push(
      row(
        'collection',
        'fail',
        `${name} has no dense vector; this tool writes one unnamed vector a point`,
        'use another --collection',
        { exists: true },
      ),
    );
  } else if (layout.size !== t.dimension) {
    const takes = t.model.dimensions.includes(layout.size)
      ? `--dimension ${layout.size} (${t.model.name} takes it), `
      : '';
    rows.push(
      row(
        'collection',
        'fail',
        `${name} holds ${layout.size}-dim vectors; ${makes}`,
        `use ${takes}another --collection, or --mode rebuild`,
        { exists: true, size: layout.size, distance: layout.distance },
      ),
    );
  } else if (layout.sparse !== undefined) {
    rows.push(
      row(
        'collection',
        'fail',
        `${name} has sparse vectors (${layout.sparse.join(', ')}); this tool writes one unnamed dense vector a point`,
        'use another --collection',
        { exists: true, size: layout.size, distance: layout.distance },
      ),
    );
  } else if (layout.distance !== VECTOR_DISTANCE) {
    rows.push(
      row(
        'collection',
        'fail',
        `${name} holds ${layout.size}-dim vectors with ${layout.distance} distance; this tool writes ${VECTOR_DISTANCE} vectors (index refuses the collection)`,
        `use another --collection for ${VECTOR_DISTANCE}`,
        { exists: true, size: layout.size, distance: layout.distance },
      ),
    );
  } else {
    rows.push(
      row(
        'collection',
        'ok',
        `${name} holds ${layout.size}-dim ${layout.distance} vectors, as ${t.model.name} makes`,
        '',
        { exists: true, size: layout.size, distance: layout.distance },
      ),
    );
  }
  return rows;
}

/** Dollars with two significant digits and no exponent: $0.0000001, $0.012, $12. */
export function formatUsd(usd: number): string {
  if (usd === 0) return '$0';
  const decimals = Math.max(2, 1 - Math.floor(Math.log10(usd)));
  return `$${usd
    .toFixed(decimals)
    .replace(/(\.\d*?[1-9])0+$/, '$1')
    .replace(/\.0+$/, '')}`;
}

function apiAction(err: EmbeddingApiError, t: DoctorTarget): string {
  if (err.status === 0) return 'check DASHSCOPE_BASE_URL / --base-url and the network';
  if (err.code === 'InvalidApiKey' || err.status === 401) {
    return 'check DASHSCOPE_API_KEY; keys belong to one region (Beijing https://dashscope.aliyuncs.com, Singapore https://dashscope-intl.aliyuncs.com): match DASHSCOPE_BASE_URL';
  }
  if (err.code === 'ModelNotFound' || err.status === 404)
    return `check that ${t.model.name} is offered at ${t.baseUrl} (the region of DASHSCOPE_BASE_URL)`;
  if (err.code === 'Arrearage' || err.status === 403)
    return 'check the account in Model Studio: balance, and access to this model';
  if (err.decision === 'rate-limited')
    return 'the key was not confirmed: run doctor again in a minute (or check what else uses this key)';
  return "see the provider's message";
}

async function checkApi(embedder: Embedder | undefined, t: DoctorTarget): Promise<CheckRow> {
  if (!t.api) return row('api key', 'skip', 'not checked (--no-api): no request sent');
  if (embedder === undefined)
    return row('api key', 'fail', 'DASHSCOPE_API_KEY is not set', 'set DASHSCOPE_API_KEY (every worker needs it)');
  const spec = t.model;
  try {
    const result = await bounded(
      embedder.embed({
        model: spec.name,
        contents: [PROBE_WORD],
        parameters: requestParameters({ model: spec, dimension: t.dimension }),
        dimension: t.dimension,
      }),
      t.timeoutMs,
    );
    const tokens = result.usage.textTokens;
    const cost = estimateCost(spec, tokens, result.usage.imageTokens);
    const price =
      spec.priceTextPerMTokens === 0 ? 'free in the catalog' : `$${spec.priceTextPerMTokens} per million text tokens`;
    return row(
      'api key',
      'ok',
      `${spec.name} at ${t.baseUrl} embedded "${PROBE_WORD}": ${tokens} text token${tokens === 1 ? '' : 's'}, ${formatUsd(cost)} (${price})`,
      '',
      // 12 significant digits: the price arithmetic's float noise (1.0000000000000001e-7) is no fact
      { textTokens: tokens, costUsd: Number(cost.toPrecision(12)) },
    );
  } catch (err) {
    if (err instanceof CheckTimeout)
      return row(
        'api key',
        'fail',
        unanswered(t.baseUrl, err),
        'check DASHSCOPE_BASE_URL / --base-url and the network',
      );
    if (!(err instanceof EmbeddingApiError)) return row('api key', 'fail', message(err), 'see the message');
    const detail =
      err.status === 0
        ? `no answer from ${t.baseUrl}: ${err.code}: ${err.providerMessage}`
        : `refused: ${err.status} ${err.code}: ${err.providerMessage}`;
    return row('api key', err.decision === 'rate-limited' ? 'warn' : 'fail', detail, apiAction(err, t));
  }
}

/** Whether a run's media URLs can reach the provider: what index would do with them. */
export function checkMediaUrls(
  m: NonNullable<DoctorTarget['mediaUrls']>,
  t: Pick<DoctorTarget, 's3Endpoint'>,
): CheckRow {
  const fix = `use IMAGE_MODE=inline for images and an S3_ENDPOINT the provider can reach for videos, or set ${PRIVATE_MEDIA_VARIABLE}=true if the API can reach this store (a local simulator)`;
  if (m.reason === undefined)
    return row('media urls', 'ok', `the provider can download presigned URLs of ${t.s3Endpoint}`);
  if (m.allowed)
    return row(
      'media urls',
      'ok',
      `${m.reason}, and ${PRIVATE_MEDIA_VARIABLE}=true: its presigned URLs are sent (the API must reach it)`,
    );
  if (m.imageMode === 'url')
    return row(
      'media urls',
      'fail',
      `${m.reason}: the provider cannot download its URLs, so index refuses IMAGE_MODE=url (and skips videos)`,
      fix,
    );
  return row(
    'media urls',
    'warn',
    `${m.reason}: the provider cannot download its URLs, so index skips videos (unreachable-url); images go inline`,
    fix,
  );
}

/** Every check, the services in parallel (so the whole run takes about one timeout at most twice). */
export async function runDoctor(clients: DoctorClients, target: DoctorTarget): Promise<CheckRow[]> {
  const [redis, bucket, qdrant, api] = await Promise.all([
    checkRedis(clients.redis, target),
    checkBucket(clients.objects, target),
    checkQdrant(clients.vectors, target),
    checkApi(clients.embedder, target),
  ]);
  return [...redis, ...bucket, ...qdrant, api, ...(target.mediaUrls ? [checkMediaUrls(target.mediaUrls, target)] : [])];
}

/** Replaces every secret in every row by `***` (redact.ts): whatever an error message carried. */
export function redactRows(rows: readonly CheckRow[], secrets: readonly (string | undefined)[]): CheckRow[] {
  const known = secrets.filter((s): s is string => s !== undefined && s.length >= 4);
  return rows.map((r) => ({ ...r, detail: redact(r.detail, known), action: redact(r.action, known) }));
}

/** Where the checks print a service's URL: its password masked (kept here for the command and reach.ts). */
export { maskUrl, urlPassword };

export function doctorCounts(rows: readonly CheckRow[]): Record<CheckStatus, number> {
  const counts: Record<CheckStatus, number> = { ok: 0, warn: 0, fail: 0, skip: 0 };
  for (const r of rows) counts[r.status] += 1;
  return counts;
}

/** The table: one line a check, and under each row that is not ok what to do. */
export function formatDoctor(rows: readonly CheckRow[]): string {
  const width = Math.max(...rows.map((r) => r.check.length));
  const lines: string[] = [];
  for (const r of rows) {
    lines.push(`${r.status.padEnd(4)}  ${r.check.padEnd(width)}  ${r.detail}`);
    if (r.action !== '') lines.push(`${' '.repeat(4 + 2 + width + 2)}-> ${r.action}`);
  }
  const c = doctorCounts(rows);
  const verdict = c.fail > 0 ? 'not ready: fix the fail rows' : c.warn > 0 ? 'ready, with warnings' : 'ready';
  lines.push(`${c.ok} ok, ${c.warn} warn, ${c.fail} fail, ${c.skip} skipped: ${verdict}`);
  return `${lines.join('\n')}\n`;
}
