/**
 * Errors are typed once, at the boundary where they arise, and carry what the caller
 * must do about them. The job layer turns `decision` into BullMQ behaviour (retry,
 * rate-limit wait, isolate an input, pause the run); nothing downstream parses messages.
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
 * What a caller does with a failed embedding request:
 * - `rate-limited`: slow every worker down, retry later; does not use an attempt.
 * - `retryable`: transient (network, timeout, 408, 5xx); retry with backoff.
 * - `input`: one of the request's inputs is refused; isolate it, the others are fine.
 * - `redownload`: the service could not download a URL: re-sign it once, then `input`.
 * - `split`: the request as a whole is too large; send its inputs in smaller requests.
 * - `request`: the request as a whole is refused for one of its parameters (a dimension or
 *   an fps the model does not take, a bad instruct): no input causes it, so splitting
 *   cannot help (bisection would send 2n-1 requests); its inputs fail with the code.
 * - `bad-response`: a 200 whose vectors do not fit the request (count or length): it was
 *   billed, so it is not sent again; its inputs fail, and a repeat stops the run.
 * - `fatal`: nothing will work for this run (key, entitlement, model, a quota that is
 *   gone): stop and say why.
 */
export type RetryDecision = 'rate-limited' | 'retryable' | 'input' | 'redownload' | 'split' | 'request' | 'bad-response' | 'fatal';

export interface ApiErrorFields {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly requestId?: string | undefined;
  /** Seconds from a Retry-After header, where the server sent one. */
  readonly retryAfterSeconds?: number | undefined;
}

export class EmbeddingApiError extends Error {
  override readonly name = 'EmbeddingApiError';
  readonly status: number;
  readonly code: string;
  readonly requestId: string | undefined;
  readonly retryAfterSeconds: number | undefined;
  readonly decision: RetryDecision;

  constructor(fields: ApiErrorFields, decision: RetryDecision = classifyApiError(fields.status, fields.code, fields.message)) {
    super(`${fields.status} ${fields.code}: ${fields.message}${fields.requestId ? ` (request ${fields.requestId})` : ''}`);
    this.status = fields.status;
    this.code = fields.code;
    this.requestId = fields.requestId;
    this.retryAfterSeconds = fields.retryAfterSeconds;
    this.decision = decision;
  }

  /** The provider's message without our status/code prefix. */
  get providerMessage(): string {
    const m = /^\d+ [^:]+: (.*?)( \(request [^)]*\))?$/s.exec(this.message);
    return m?.[1] ?? this.message;
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
  return code === 'Arrearage' || /free (allocated )?quota (is )?(exceeded|exhausted|used up)|allocated quota exceeded.*free|in arrears|overdue/i.test(message);
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
  if (FATAL_CODES.has(code) || status === 401 || status === 403 || status === 404 || isQuotaGone(code, message)) return 'fatal';
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
