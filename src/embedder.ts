/**
 * The API client: one HTTP call to the multimodal embedding endpoint, exactly as the
 * contract gives it, with a timeout, the response checked (one vector per input, the
 * right dimension, `index` mapped back to input order) and every failure turned into an
 * EmbeddingApiError carrying its retry decision. The API key is only ever put in the
 * Authorization header: it is not in any error, log line or returned value.
 */
import { DEFAULT_BASE_URL, EMBEDDING_PATH } from './api.js';
import type { ApiContent, ApiErrorBody, ApiParameters, ApiSuccessBody, EmbeddingType } from './api.js';
import { EmbeddingApiError, networkError } from './errors.js';
import { redact as redactText } from './redact.js';
import type { SendThread } from './send-thread.js';
import { agrees, embeddingTexts, rememberJson } from './vector-json.js';

export interface EmbedRequest {
  readonly model: string;
  readonly contents: readonly ApiContent[];
  readonly parameters?: ApiParameters;
  /** The vector length the caller expects; a response of another length is refused. */
  readonly dimension: number;
}

export interface EmbedUsage {
  readonly textTokens: number;
  readonly imageTokens: number;
  readonly totalTokens: number;
}

export interface EmbedResult {
  /** vectors[i] is the embedding of contents[i]. */
  readonly vectors: number[][];
  readonly types: EmbeddingType[];
  readonly usage: EmbedUsage;
  readonly requestId: string;
}

/** A request made ready to go (its body serialized): sending it does nothing more before the bytes leave. */
export interface PreparedEmbed {
  send(signal?: AbortSignal): Promise<EmbedResult>;
  /**
   * Sends at a slot from a thread of its own (send-thread.ts): not before `dueAt`
   * (performance.now() ms), and not at all once more than `toleranceMs` after it, which
   * resolves `{ late }` instead. Optional: `send` is used when absent.
   */
  sendAt?(at: SendSlot, signal?: AbortSignal): Promise<EmbedResult | { readonly late: number }>;
  /** Resolves once `sendAt` can take a hand-over at once (its thread has booted); await it before reserving a slot. */
  ready?(): Promise<void>;
}

export interface SendSlot {
  readonly dueAt: number;
  readonly toleranceMs: number;
}

/** What the pipeline needs from an embedding service (a fake implements it in unit tests). */
export interface Embedder {
  embed(request: EmbedRequest, signal?: AbortSignal): Promise<EmbedResult>;
  /**
   * Serializes the request now, so the caller can reserve its send time afterwards and
   * the request leaves right at it (the rate limiter's slot). Optional: `embed` is used
   * when absent.
   */
  prepare?(request: EmbedRequest): PreparedEmbed;
}

export interface ClientOptions {
  readonly apiKey: string;
  /** @defaultValue https://dashscope.aliyuncs.com (Beijing) */
  readonly baseUrl?: string;
  /** Per-request timeout; the server's own limit is 300 s. @defaultValue 120000 */
  readonly timeoutMs?: number;
  /** Sends timed requests (`sendAt`) from a thread of their own. @defaultValue none: `prepare` gives `send` only */
  readonly sendThread?: SendThread;
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** Usage fields differ by model; every one is optional. */
export function readUsage(usage: ApiSuccessBody['usage']): EmbedUsage {
  const textTokens = num(usage?.input_tokens_details?.text_tokens ?? usage?.input_tokens);
  const imageTokens = num(usage?.input_tokens_details?.image_tokens ?? usage?.image_tokens);
  const totalTokens = num(usage?.total_tokens) || textTokens + imageTokens;
  return { textTokens, imageTokens, totalTokens };
}

function retryAfter(header: string | null): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/**
 * Checks a 200 body against the request. A body that is no embedding answer at all is a
 * retryable BadResponse (a gateway's page, a cut connection); embeddings that do not fit
 * the request (how many, how long, which index) were computed and billed: `bad-response`,
 * not sent again.
 */
export function checkResponse(body: unknown, request: EmbedRequest): EmbedResult {
  const billed = (body as { request_id?: unknown } | undefined)?.request_id;
  const bad = (why: string): never => {
    throw new EmbeddingApiError(
      {
        status: 200,
        code: 'bad-response',
        message: `embedding response ${why}`,
        requestId: typeof billed === 'string' ? billed : undefined,
      },
      'bad-response',
    );
  };
  if (!isObject(body) || !isObject(body.output) || !Array.isArray(body.output.embeddings)) {
    throw networkError('BadResponse', 'embedding response has no output.embeddings');
  }
  const success = body as unknown as ApiSuccessBody;
  const n = request.contents.length;
  const list = success.output.embeddings;
  if (list.length !== n) return bad(`has ${list.length} embeddings for ${n} inputs`);
  const vectors: (number[] | undefined)[] = new Array<number[] | undefined>(n);
  const types: EmbeddingType[] = new Array<EmbeddingType>(n);
  for (const e of list) {
    if (!isObject(e)) return bad('has an entry that is not an object');
    if (!Number.isInteger(e.index) || e.index < 0 || e.index >= n || vectors[e.index])
      return bad(`has a missing or repeated index ${String(e.index)}`);
    if (!Array.isArray(e.embedding) || e.embedding.length !== request.dimension) {
      return bad(
        `has a vector of length ${Array.isArray(e.embedding) ? e.embedding.length : 'none'} where ${request.dimension} was asked`,
      );
    }
    const v: unknown[] = e.embedding;
    for (let i = 0; i < v.length; i++)
      if (typeof v[i] !== 'number' || !Number.isFinite(v[i])) return bad('has a non-numeric vector component');
    vectors[e.index] = e.embedding;
    types[e.index] = e.type;
  }
  return {
    vectors: vectors as number[][],
    types,
    usage: readUsage(success.usage),
    requestId: String(success.request_id ?? ''),
  };
}

/**
 * Keeps each vector's text from the answer (vector-json.ts), so that the Qdrant write sends
 * it as it came instead of formatting its numbers again; a text that does not agree with
 * its parsed vector is not kept.
 */
function keepVectorTexts(answer: string, list: ApiSuccessBody['output']['embeddings']): void {
  const texts = embeddingTexts(answer);
  if (!texts) return;
  list.forEach((e, k) => {
    const text = texts[k];
    if (text !== undefined && agrees(text, e.embedding)) rememberJson(e.embedding, text);
  });
}

export class DashScopeClient implements Embedder {
  private readonly endpoint: string;
  private readonly timeoutMs: number;

  constructor(private readonly options: ClientOptions) {
    if (!options.apiKey) throw new Error('DashScopeClient needs an API key');
    this.endpoint = `${(options.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, '')}${EMBEDDING_PATH}`;
    this.timeoutMs = options.timeoutMs ?? 120_000;
  }

  embed(request: EmbedRequest, signal?: AbortSignal): Promise<EmbedResult> {
    return this.prepare(request).send(signal);
  }

  prepare(request: EmbedRequest): PreparedEmbed {
    const body = JSON.stringify({
      model: request.model,
      input: { contents: request.contents },
      parameters: request.parameters ?? {},
    });
    const thread = this.options.sendThread;
    return {
      send: (signal) => this.post(request, body, signal),
      ...(thread
        ? {
            sendAt: (at: SendSlot, signal?: AbortSignal) => this.postAt(thread, request, body, at, signal),
            ready: () => thread.ready(),
          }
        : {}),
    };
  }

  private headers(): Record<string, string> {
    return { authorization: `Bearer ${this.options.apiKey}`, 'content-type': 'application/json' };
  }

  private async postAt(
    thread: SendThread,
    request: EmbedRequest,
    body: string,
    at: SendSlot,
    signal?: AbortSignal,
  ): Promise<EmbedResult | { late: number }> {
    const out = await thread.post(
      { url: this.endpoint, headers: this.headers(), body, ...at, timeoutMs: this.timeoutMs },
      signal,
    );
    if (out.kind === 'late') return { late: out.lateMs };
    if (out.kind === 'error') {
      if (out.timeout) throw networkError('Timeout', `no answer within ${this.timeoutMs} ms`);
      throw networkError('NetworkError', redactText(out.cause, [this.options.apiKey]));
    }
    return this.answer(request, out.status, out.retryAfter, out.text);
  }

  /** Node's fetch keeps connections alive between requests, so a request's send is not a TCP handshake. */
  private async post(request: EmbedRequest, body: string, signal?: AbortSignal): Promise<EmbedResult> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.endpoint, {
        method: 'POST',
        headers: this.headers(),
        body,
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      text = await response.text();
    } catch (err) {
      if (timeout.aborted) throw networkError('Timeout', `no answer within ${this.timeoutMs} ms`);
      if (signal?.aborted) throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw networkError('NetworkError', cause?.code ?? cause?.message ?? (err as Error).message);
    }
    return this.answer(request, response.status, response.headers.get('retry-after'), text);
  }

  /** An answer, however it was sent: its vectors, or the EmbeddingApiError it is. */
  private answer(request: EmbedRequest, status: number, retryAfterHeader: string | null, text: string): EmbedResult {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (status < 200 || status > 299) {
      const e = isObject(parsed) ? (parsed as Partial<ApiErrorBody>) : {};
      // A server or gateway may echo the Authorization header back, a provider the presigned
      // URL it could not download: neither the key nor a signature goes into the error.
      const redact = (s: string): string => redactText(s, [this.options.apiKey]);
      throw new EmbeddingApiError({
        status,
        code: typeof e.code === 'string' && e.code ? e.code : `HTTP${status}`,
        message: typeof e.message === 'string' ? redact(e.message) : redact(text).slice(0, 200),
        requestId: typeof e.request_id === 'string' ? e.request_id : undefined,
        retryAfterSeconds: retryAfter(retryAfterHeader),
      });
    }
    if (parsed === undefined)
      throw networkError('BadResponse', `embedding response is not JSON (${text.length} bytes)`);
    const result = checkResponse(parsed, request);
    keepVectorTexts(text, (parsed as ApiSuccessBody).output.embeddings);
    return result;
  }
}
