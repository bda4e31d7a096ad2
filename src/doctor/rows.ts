/**
 * What the doctor's checks share: the clients and the target they look at, a check's row
 * (ok, warn, fail or skip, with what to do) and the bound on each question.
 */
import type { Embedder } from '../embedder.js';
import type { ModelSpec } from '../models.js';
import type { ObjectStore } from '../object-store.js';
import type { QdrantStore } from '../qdrant-store.js';

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

export class CheckTimeout extends Error {
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

export const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Drops the request id a message ends with: it differs on every call and helps no operator here. */
export const withoutRequestId = (text: string): string => text.replace(/ \(request [^)]*\)$/, '');

/** Why a service gave no usable answer: it timed out, or the client's error. */
export const unanswered = (where: string, err: unknown): string =>
  err instanceof CheckTimeout ? `${err.message} from ${where}` : `${where}: ${message(err)}`;

export const row = (
  check: string,
  status: CheckStatus,
  detail: string,
  action = '',
  facts?: CheckRow['facts'],
): CheckRow => (facts === undefined ? { check, status, detail, action } : { check, status, detail, action, facts });
