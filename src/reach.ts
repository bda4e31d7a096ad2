/**
 * Reaching Redis, S3 and Qdrant.
 *
 * A command checks, before any work, that every service it needs answers within
 * CONNECT_TIMEOUT_MS. A service that refuses the connection, cannot be resolved, or accepts
 * it and never answers is a ServiceUnreachableError naming the service, its URL (password
 * masked) and the cause; the CLI prints it as one line and exits 2. An answer of any kind
 * (a missing bucket, a refused key) means the service is there: the command goes on and
 * meets that answer itself.
 *
 * A worker instead keeps retrying a Redis it lost (it must outlive a restart). Its outage
 * log has two states: up (nothing logged) and down, entered at the first connection error
 * while a watched connection is not ready (one line), where it logs at most one line per
 * interval however many attempts fail, and left when every watched connection is ready
 * again (one line with the outage's length). Errors of clients that share the connection
 * (BullMQ's queues and blocking connections) go through it too, so nothing is logged per
 * attempt and no stack trace is printed.
 */
import type { EventEmitter } from 'node:events';
import { maskUrl, urlPassword } from './redact.js';
import { ServiceUnreachableError } from './errors.js';
import type { Logger } from './log.js';
import type { VectorStore } from './vector-store.js';

/**
 * Socket-level failures: no answer came from the service (Node's codes, undici's, ioredis's
 * words); and Redis's own "not yet" answers while it restarts (LOADING its AOF) or a
 * cluster settles, which pass like the outage they end.
 */
const NO_ANSWER =
  /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ECONNABORTED|UND_ERR_[A-Z_]+)\b|Connection is closed|Stream isn't writeable|Failed to refresh slots cache|None of startup nodes is available|^(LOADING|TRYAGAIN|CLUSTERDOWN|MASTERDOWN) /;

interface ErrorShape {
  readonly message?: unknown;
  readonly code?: unknown;
  readonly errors?: unknown;
  readonly lastNodeError?: unknown;
  readonly cause?: unknown;
}

const shape = (err: unknown): ErrorShape => (typeof err === 'object' && err !== null ? (err as ErrorShape) : {});

/** True for an error that says the connection failed, not that the service answered. Duck-typed: errors cross realms. */
export function isConnectionError(err: unknown): boolean {
  const e = shape(err);
  const said = (v: unknown): boolean => typeof v === 'string' && NO_ANSWER.test(v);
  return said(e.code) || said(e.message) || (e.cause !== undefined && e.cause !== err && isConnectionError(e.cause));
}

/**
 * What went wrong, in words: the message, or (a dual-stack connect's AggregateError has an
 * empty one) its first inner error's, or the code; a cluster's "failed to refresh" names
 * the last node's error.
 */
export function causeOf(err: unknown): string {
  const e = shape(err);
  const message = typeof e.message === 'string' ? e.message.trim() : '';
  const inner =
    Array.isArray(e.errors) && e.errors.length > 0 ? causeOf(e.errors[0]) : typeof e.code === 'string' ? e.code : '';
  const last = e.lastNodeError !== undefined ? causeOf(e.lastNodeError) : '';
  const own = message !== '' ? message : inner !== '' ? inner : String(err);
  return last !== '' && last !== own ? `${own} (${last})` : own;
}

/** A service's URL as printed, with the passwords it holds, to keep out of any message. */
export interface ServiceLabel {
  readonly service: string;
  readonly url: string;
  readonly secrets: readonly string[];
}

export function serviceLabel(
  service: string,
  url: string,
  extraSecrets: readonly (string | undefined)[] = [],
): ServiceLabel {
  return {
    service,
    url: maskUrl(url),
    secrets: [...urlPassword(url), ...extraSecrets].filter((s): s is string => s !== undefined && s.length >= 4),
  };
}

export function unreachable(label: ServiceLabel, cause: string): ServiceUnreachableError {
  const clean = label.secrets.reduce((acc, s) => acc.split(s).join('***'), cause);
  return new ServiceUnreachableError(label.service, label.url, clean);
}

const noAnswer = (timeoutMs: number): string => `no answer within ${timeoutMs} ms (CONNECT_TIMEOUT_MS)`;

/** The part of a connection that says whether it is ready (a single Redis or a cluster alike). */
export interface WatchedConnection extends Pick<EventEmitter, 'on' | 'once' | 'off'> {
  readonly status: string;
}

/**
 * Resolves once the connection is ready; rejects at its first error, or when it is not
 * ready within `timeoutMs` (a server that accepted and never answered), with a
 * ServiceUnreachableError.
 */
export function reachRedis(connection: WatchedConnection, label: ServiceLabel, timeoutMs: number): Promise<void> {
  if (connection.status === 'ready') return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer);
      connection.off('ready', onReady);
      connection.off('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const onReady = (): void => done();
    const onError = (err: unknown): void => {
      // a cluster knows only that no seed node gave it the slots (its nodes' own errors are not passed on)
      const cause = causeOf(err);
      done(
        unreachable(label, /Failed to refresh slots cache/.test(cause) ? `no seed node answered (${cause})` : cause),
      );
    };
    const timer = setTimeout(() => done(unreachable(label, noAnswer(timeoutMs))), timeoutMs);
    connection.once('ready', onReady);
    connection.on('error', onError);
  });
}

/** `probe` within `timeoutMs`: its answer, or a ServiceUnreachableError when it timed out. */
async function within<T>(probe: Promise<T>, label: ServiceLabel, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(unreachable(label, noAnswer(timeoutMs))), timeoutMs)),
  );
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** What the S3 check needs of the store: one bounded request that says whether the endpoint answered. */
export interface AnsweringStore {
  /** Undefined once the endpoint answered anything; else why no answer came. */
  answers(bucket: string, timeoutMs: number): Promise<string | undefined>;
}

export async function reachS3(
  store: AnsweringStore,
  bucket: string,
  label: ServiceLabel,
  timeoutMs: number,
): Promise<void> {
  const cause = await within(store.answers(bucket, timeoutMs), label, timeoutMs);
  if (cause !== undefined) throw unreachable(label, cause);
}

/**
 * One cheap read (the list of collections): an answer of any status means Qdrant is there;
 * a failure without one (status 0 and retryable: network, timeout) means it is not.
 */
export async function reachQdrant(
  vectors: Pick<VectorStore, 'collectionExists'>,
  label: ServiceLabel,
  timeoutMs: number,
): Promise<void> {
  try {
    await within(vectors.collectionExists('mm-ingest-reach'), label, timeoutMs);
  } catch (err) {
    if (err instanceof ServiceUnreachableError) throw err;
    const e = err as { status?: unknown; retryable?: unknown; message?: unknown };
    if (e.status === 0 && e.retryable === true) {
      // "Qdrant getCollections on collection "..." failed: network error: ..." -> what failed
      const message = String(e.message);
      throw unreachable(label, message.replace(/^Qdrant \w+ on collection "[^"]*" failed: /, ''));
    }
  }
}

/** A worker's log of Redis outages (see the module's comment). */
export interface RedisOutageLog {
  /** Takes this connection's errors and readiness into account. */
  watch(connection: WatchedConnection): void;
  /** An error from a client on a watched connection: part of the outage when it is a connection error, else given to `other`. */
  error(err: Error, other: (err: Error) => void): void;
}

export function redisOutageLog(opts: {
  readonly label: ServiceLabel;
  readonly intervalMs: number;
  readonly log: Pick<Logger, 'warn'>;
  readonly now?: () => number;
}): RedisOutageLog {
  const now = opts.now ?? Date.now;
  const watched: WatchedConnection[] = [];
  let downSince: number | undefined;
  let lastLine = 0;
  let attempts = 0;
  const clean = (s: string): string => opts.label.secrets.reduce((acc, secret) => acc.split(secret).join('***'), s);
  const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
  const where = `${opts.label.service} at ${opts.label.url}`;

  function connectionError(err: unknown): void {
    // a straggler from a client whose connection is already back is no outage
    if (downSince === undefined && watched.every((c) => c.status === 'ready')) return;
    const t = now();
    attempts += 1;
    if (downSince === undefined) {
      downSince = t;
      lastLine = t;
      attempts = 1;
      opts.log.warn(
        `${where} unreachable: ${clean(causeOf(err))}; retrying (one line every ${seconds(opts.intervalMs)} while it lasts)`,
      );
    } else if (t - lastLine >= opts.intervalMs) {
      lastLine = t;
      opts.log.warn(
        `${where} still unreachable after ${seconds(t - downSince)} (${attempts} attempts): ${clean(causeOf(err))}; retrying`,
      );
    }
  }

  function ready(): void {
    if (downSince === undefined || !watched.every((c) => c.status === 'ready')) return;
    opts.log.warn(`${where} reachable again after ${seconds(now() - downSince)} (${attempts} failed attempts)`);
    downSince = undefined;
  }

  return {
    watch(connection) {
      watched.push(connection);
      connection.on('error', (err: unknown) =>
        isConnectionError(err) ? connectionError(err) : opts.log.warn(`${where}: ${clean(causeOf(err))}`),
      );
      connection.on('ready', ready);
    },
    error(err, other) {
      if (isConnectionError(err)) connectionError(err);
      else other(err);
    },
  };
}
