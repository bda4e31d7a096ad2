/**
 * Qdrant's failures as the pipeline's errors: the client's HTTP errors, undici's network
 * errors and timeouts become a VectorStoreError with its decision, and Qdrant's own wording.
 */
import { ServiceError } from './errors.js';

/** Socket-level failures undici reports as the `cause` of its "fetch failed" TypeError. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/**
 * A failed Qdrant request. `status` is the HTTP status, 0 when no answer came. Its decision
 * (see `Decision`): `rate-limited` (429), `retryable` (network, timeout, 5xx: a later
 * attempt may succeed), or `request` (any other 4xx, and failures we cannot classify: a
 * later attempt fails the same way).
 */
export class VectorStoreError extends ServiceError {
  override readonly name = 'VectorStoreError';
  readonly service = 'vector store';
  constructor(
    message: string,
    readonly status: number,
    retryable: boolean,
    readonly collection: string,
    retryAfterSeconds?: number,
  ) {
    super(
      message,
      status === 0 ? 'NetworkError' : `HTTP${status}`,
      !retryable ? 'request' : status === 429 ? 'rate-limited' : 'retryable',
      retryAfterSeconds,
    );
  }
}

interface Failure {
  status: number;
  detail: string;
  retryable: boolean;
  retryAfterSeconds?: number;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** Qdrant's own wording of an HTTP error: `{"status":{"error":"..."}}`, else the raw body. */
function qdrantText(data: unknown, fallback: string): string {
  if (isRecord(data) && isRecord(data.status) && typeof data.status.error === 'string') return data.status.error;
  if (typeof data === 'string' && data.trim() !== '') return data.trim();
  return fallback;
}

/**
 * Classifies what the client threw. Duck-typed throughout: fetch's errors come from Node's
 * own realm (so `instanceof` fails under a VM context such as jest's), and the client's
 * ApiError class lives in a transitive package we do not import.
 */
export function describeFailure(error: unknown): Failure {
  if (!isRecord(error)) return { status: 0, detail: String(error), retryable: false };
  const name = typeof error.name === 'string' ? error.name : 'Error';
  const message = typeof error.message === 'string' ? error.message : String(error);
  if (typeof error.retry_after === 'number') {
    // QdrantClientResourceExhaustedError: a 429 that came with Retry-After.
    return { status: 429, detail: message, retryable: true, retryAfterSeconds: error.retry_after };
  }
  if (typeof error.status === 'number') {
    const status = error.status;
    const statusText =
      typeof error.statusText === 'string' && error.statusText !== '' ? error.statusText : 'no message';
    return { status, detail: qdrantText(error.data, statusText), retryable: status === 429 || status >= 500 };
  }
  // QdrantClientUnexpectedResponseError: a 2xx other than 200/201 that the client refuses.
  const unexpected = /^Unexpected Response: (\d{3})/.exec(message);
  if (unexpected?.[1] !== undefined) {
    const status = Number(unexpected[1]);
    return { status, detail: message.split('\n')[0] ?? message, retryable: status >= 500 };
  }
  if (name === 'QdrantClientTimeoutError' || name === 'AbortError' || name === 'TimeoutError') {
    return { status: 0, detail: `timed out (${message})`, retryable: true };
  }
  const cause = error.cause;
  const code = isRecord(cause) && typeof cause.code === 'string' ? cause.code : undefined;
  if (code !== undefined && NETWORK_CODES.has(code)) {
    // Node reports a failed dual-stack connect as an AggregateError with an empty message.
    const causeMessage =
      isRecord(cause) && typeof cause.message === 'string' && cause.message !== '' ? cause.message : code;
    return { status: 0, detail: `network error: ${causeMessage}`, retryable: true };
  }
  if (name === 'TypeError' && message === 'fetch failed') {
    const causeMessage = isRecord(cause) && typeof cause.message === 'string' ? `: ${cause.message}` : '';
    return { status: 0, detail: `network error${causeMessage}`, retryable: true };
  }
  // Anything else is most likely a bug (an unserializable payload, say): retrying won't help.
  return { status: 0, detail: `${name}: ${message}`, retryable: false };
}
