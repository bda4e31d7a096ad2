/**
 * The object store's failures in the pipeline's vocabulary: an S3 SDK error, an S3 error
 * code or a Node network code becomes an ObjectStoreError with its decision (gone,
 * retryable, fatal, request) and a message without secrets. Beside s3-store.ts, its adapter.
 */
import { ObjectStoreError } from './object-store.js';
import type { ObjectStoreDecision } from './object-store.js';
import { redact } from './redact.js';

const TRANSIENT_CODES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestTimeout',
  'InternalError',
  'ServiceUnavailable',
  'TimeoutError',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
]);
const DENIED_CODES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'AllAccessDisabled',
  'AccountProblem',
  'CredentialsProviderError',
  'TokenProviderError',
]);

export interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: unknown; requestId?: unknown };
}

/** The decision for a failed call, from the S3 error code, the HTTP status or the Node network code. */
export function classifyS3Error(code: string, status: number | undefined): ObjectStoreDecision {
  // A missing bucket is a configuration problem for the whole run, not a deleted object.
  if (code === 'NoSuchBucket') return 'request';
  if (code === 'NoSuchKey' || code === 'NotFound' || status === 404) return 'gone';
  if (DENIED_CODES.has(code) || status === 403 || status === 401) return 'fatal';
  if (TRANSIENT_CODES.has(code) || status === 429 || (status !== undefined && status >= 500)) return 'retryable';
  return 'request';
}

export function toStoreError(err: unknown, operation: string, where: string): ObjectStoreError {
  const e = (typeof err === 'object' && err !== null ? err : {}) as SdkErrorShape;
  const status = typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
  // Node network errors carry their meaning in `code` (ECONNRESET); SDK errors in `name`.
  const message = typeof e.message === 'string' && e.message !== '' ? e.message : String(err);
  const nodeCode = typeof e.code === 'string' ? e.code : status === undefined ? networkCodeIn(message) : undefined;
  const name = typeof e.name === 'string' && e.name !== 'Error' ? e.name : undefined;
  const code = nodeCode ?? name ?? (status !== undefined ? `HTTP${status}` : 'Unknown');
  const decision = classifyS3Error(code, status);
  const requestId = typeof e.$metadata?.requestId === 'string' ? ` (request ${e.$metadata.requestId})` : '';
  const detail = redact(message);
  return new ObjectStoreError(
    decision,
    code,
    `${operation} ${where} failed: ${code}${status ? ` ${status}` : ''}: ${detail}${requestId}`,
  );
}

/**
 * The SDK turns an error that is not `instanceof Error` in its own realm (a Node network
 * error seen from jest's VM modules, for one) into a message-only Error: the network code
 * then survives only in the text.
 */
function networkCodeIn(message: string): string | undefined {
  const found = /\b(E[A-Z]{3,}|UND_ERR_[A-Z_]+)\b/.exec(message)?.[1];
  return found !== undefined && TRANSIENT_CODES.has(found) ? found : undefined;
}
