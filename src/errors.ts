/**
 * Errors are typed once, at the adapter where they arise, and carry what the caller must do
 * about them: every outside system (the embedding API, the object store, the vector store)
 * fails with a `ServiceError` whose `decision` is one word of one vocabulary. Callers check
 * them with `instanceof` and act on `decision`; the workers turn it into BullMQ's terms in
 * one place (`workers/job-errors.ts`); nothing downstream parses messages.
 */

/** A configuration value that is missing or wrong; `name` is the variable, flag or field. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly setting: string,
    readonly problem: string,
  ) {
    super(`${setting}: ${problem}`);
  }
}

/**
 * Redis, S3 or Qdrant did not answer a command's first request (refused, unresolvable, or
 * silent for CONNECT_TIMEOUT_MS). `url` has its password masked; `reason` is what failed.
 */
export class ServiceUnreachableError extends Error {
  override readonly name = 'ServiceUnreachableError';
  constructor(
    readonly service: string,
    readonly url: string,
    readonly reason: string,
  ) {
    super(`cannot reach ${service} at ${url}: ${reason}`);
  }
}

/**
 * What a caller does with a failure of an outside system.
 * Any system:
 * - `retryable`: transient (network, timeout, 408, 5xx, a store's SlowDown); retry with backoff.
 * - `rate-limited`: slow down and retry later; for the embedding API every worker slows
 *   down and the wait does not use an attempt.
 * - `fatal`: nothing will work for this run (a key, a permission, an entitlement, a model,
 *   a quota that is gone): stop and say why.
 * - `request`: the call is refused as made (a parameter, a missing bucket or collection, a
 *   vector of the wrong length): the same call fails the same way, and for the embedding
 *   API no single input causes it, so splitting cannot help (bisection would send 2n-1
 *   requests); its inputs fail with the code.
 * The object store:
 * - `gone`: the object no longer exists.
 * The embedding API:
 * - `input`: one of the request's inputs is refused; isolate it, the others are fine.
 * - `redownload`: the service could not download a URL: re-sign it once, then `input`.
 * - `split`: the request as a whole is too large; send its inputs in smaller requests.
 * - `bad-response`: a 200 whose vectors do not fit the request (count or length): it was
 *   billed, so it is not sent again; its inputs fail, and a repeat stops the run.
 */
export type Decision =
  'retryable' | 'rate-limited' | 'fatal' | 'request' | 'gone' | 'input' | 'redownload' | 'split' | 'bad-response';
/** The decisions an embedding request can get. */
export type RetryDecision = Exclude<Decision, 'gone'>;

export type ServiceName = 'embedding API' | 'object store' | 'vector store';

/** A failure of an outside system, with what to do about it decided by its adapter. */
export abstract class ServiceError extends Error {
  abstract readonly service: ServiceName;
  constructor(
    message: string,
    /** The system's own code (a provider code, an S3 error code, a Node network code, `HTTP400`). */
    readonly code: string,
    readonly decision: Decision,
    /** Seconds from the system's Retry-After, where it sent one. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }

  /** Whether a later attempt of the same call may succeed. */
  get retryable(): boolean {
    return this.decision === 'retryable' || this.decision === 'rate-limited';
  }
}

/**
 * Job data that no attempt can process: malformed (a field a Redis writer got wrong) or
 * refused (a model that does not exist). The worker fails it at once, without retries.
 */
export class UnprocessableJobError extends Error {
  override readonly name = 'UnprocessableJobError';
}

export interface ApiErrorFields {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly requestId?: string | undefined;
  /** Seconds from a Retry-After header, where the server sent one. */
  readonly retryAfterSeconds?: number | undefined;
}

export class EmbeddingApiError extends ServiceError {
  override readonly name = 'EmbeddingApiError';
  readonly service = 'embedding API';
  readonly status: number;
  readonly requestId: string | undefined;
  /** The provider's message, without our status and code around it. */
  readonly providerMessage: string;
  declare readonly decision: RetryDecision;

  constructor(
    fields: ApiErrorFields,
    decision: RetryDecision = classifyApiError(fields.status, fields.code, fields.message),
  ) {
    super(
      `${fields.status} ${fields.code}: ${fields.message}${fields.requestId ? ` (request ${fields.requestId})` : ''}`,
      fields.code,
      decision,
      fields.retryAfterSeconds,
    );
    this.status = fields.status;
    this.requestId = fields.requestId;
    this.providerMessage = fields.message;
  }
}

const FATAL_CODES = new Set([
  'InvalidApiKey',
  'Arrearage',
  'AccessDenied',
  'AccessDenied.Unpurchased',
  'AllocationQuota.FreeTierOnly',
  'ModelNotFound',
]);

/**
 * A refusal that waiting does not cure: the free quota used up, or the account in arrears
 * (the provider answers these with 429 or 403 too; retrying would loop until morning).
 */
export function isQuotaGone(code: string, message: string): boolean {
  return (
    code === 'Arrearage' ||
    /free (allocated )?quota (is )?(exceeded|exhausted|used up)|allocated quota exceeded.*free|in arrears|overdue/i.test(
      message,
    )
  );
}

/** The request's `parameters` (contract: dimension, output_type, fps, instruct). */
const PARAMETER = /\b(dimension|output_type|fps|instruct)\b/i;
/** Words of an element's problem: a message that names one is about an input, not the request. */
const ELEMENT = /\b(image|video|text|contents?|elements?|url|frames?|pixels?|multi_images)\b|\[\d+\]/i;

/**
 * Whether a 400's message refuses one of the request's parameters rather than an input:
 * it names a parameter and no element. The provider does not publish these messages, so
 * this reads what it and the simulator say ("dimension 3072 is not supported by ...",
 * "fps must be a number in [0, 1]"); a message that names an image's dimensions is an
 * input's refusal and is still isolated.
 */
export function refusesParameter(message: string): boolean {
  return PARAMETER.test(message) && !ELEMENT.test(message);
}

/** The contract's error table as a function of (HTTP status, provider code, and for quotas the message). */
export function classifyApiError(status: number, code: string, message = ''): RetryDecision {
  if (FATAL_CODES.has(code) || status === 401 || status === 403 || status === 404 || isQuotaGone(code, message))
    return 'fatal';
  if (status === 429 || code.startsWith('Throttling')) return 'rate-limited';
  if (status === 413 || code === 'BadRequest.TooLarge') return 'split';
  if (code === 'InternalError.Algo.InvalidParameter') return 'redownload';
  if (status === 400 && refusesParameter(message)) return 'request';
  if (status === 400) return 'input';
  if (status === 408 || status >= 500) return 'retryable';
  return 'input';
}

/** A failure before any HTTP status: connection refused or reset, DNS, timeout. */
export function networkError(code: 'Timeout' | 'NetworkError' | 'BadResponse', message: string): EmbeddingApiError {
  return new EmbeddingApiError({ status: 0, code, message }, 'retryable');
}
