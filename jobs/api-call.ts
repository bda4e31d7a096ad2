/**
 * Sending one planned request, the way an overnight run needs it:
 * - every attempt first passes the shared rate limiter (all workers, all machines);
 * - a 429 is reported to the limiter (which widens its margin or lowers the shared rate,
 *   src/rate-limit.ts) and the same request asks for a new slot: it uses no attempt,
 *   neither of this call nor of the job;
 * - transient failures (network, timeout, 408, 5xx) are retried here with exponential
 *   backoff and jitter, so one flaky answer does not redo (and re-pay) the whole job;
 * - a request refused because of its inputs is split in halves until the culprits are
 *   alone (bisection); so is one that keeps failing with 500, since a single input can
 *   cause it; a URL the service could not download is signed again once;
 * - a request refused for one of its parameters (errors.ts `request`: a dimension the
 *   model does not take, say) is not split: every half would be refused the same way, 2n-1
 *   requests for nothing; its inputs fail at once with the provider's code;
 * - a fatal error (key, entitlement, model, a quota gone for good or 429s without end) is
 *   thrown for the worker to pause the run;
 * - an answer whose vectors do not fit was billed: its inputs fail, it is not sent again.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pRetry from 'p-retry';
import type { EmbedResult, Embedder } from '../src/embedder.js';
import { EmbeddingApiError } from '../src/errors.js';
import type { ModelSpec } from '../src/models.js';
import { requestBody } from '../src/request-body.js';
import type { PlanOptions } from '../src/plan-limits.js';
import type { PlannedInput } from '../src/planned-input.js';
import type { PlannedRequest } from '../src/planner.js';
import { NO_METRICS } from '../src/metrics.js';
import type { PipelineMetrics } from '../src/metrics.js';
import type { RequestGate } from '../src/request-gate.js';
import type { RunCounters } from '../src/runs.js';

/** What one job's calls cost, added to the run's counters of the same names. */
export interface CallStats extends Pick<
  RunCounters,
  'requests' | 'inputs' | 'textTokens' | 'imageTokens' | 'retries' | 'throttled'
> {
  requestIds: string[];
}

export const newCallStats = (): CallStats => ({
  requests: 0,
  inputs: 0,
  textTokens: 0,
  imageTokens: 0,
  retries: 0,
  throttled: 0,
  requestIds: [],
});

export interface CallDeps {
  readonly embedder: Embedder;
  readonly gate: RequestGate;
  /** A fresh URL for an input's object, when the service could not download the old one. */
  readonly resign: (input: PlannedInput) => Promise<PlannedInput | undefined>;
  /** Attempts of one request for transient failures. @defaultValue 6 */
  readonly attempts?: number | undefined;
  /** First backoff; doubles each attempt, randomized. @defaultValue 500 */
  readonly backoffMs?: number | undefined;
  /** @defaultValue no metrics */
  readonly metrics?: PipelineMetrics | undefined;
  /**
   * Aborted when the worker stops: no request is sent after it (one in flight is awaited,
   * its vectors are paid for), so a job left to another worker is not paid for twice.
   */
  readonly signal?: AbortSignal | undefined;
  /**
   * How long one request may keep meeting 429s before the quota is taken to be gone for
   * hours (a TPM or allocation that does not come back): the call then stops the run with
   * the reason instead of holding its job in a 429 loop. @defaultValue 30 minutes
   */
  readonly quotaPauseAfterMs?: number | undefined;
  /**
   * Answers of the wrong shape seen so far, shared by the calls of one worker: the first
   * fails its request's inputs (`bad-response`), a repeat stops the run (the collection's
   * dimension and what the model returns disagree).
   */
  readonly badResponses?: { count: number };
}

export interface Embedded {
  readonly done: { input: PlannedInput; vector: number[] }[];
  readonly refused: { input: PlannedInput; error: EmbeddingApiError }[];
}

/** Backoff after the n-th consecutive 429 of a call: 1 s doubling to 30 s, with jitter. */
function throttleBackoff(n: number): number {
  const base = Math.min(30_000, 1000 * 2 ** n);
  return base / 2 + Math.random() * (base / 2);
}

/** A request of these inputs (a part of a planned one, so within the same limits). */
export function requestOf(inputs: readonly PlannedInput[]): PlannedRequest {
  const sum = (f: (i: PlannedInput) => number): number => inputs.reduce((s, i) => s + f(i), 0);
  return {
    inputs,
    textTokens: sum((i) => i.textTokens),
    limitTokens: sum((i) => i.limitTokens),
    images: sum((i) => i.images),
    videos: sum((i) => i.videos),
    bodyBytes: sum((i) => i.bodyBytes),
  };
}

/**
 * How long before its slot a request is handed to a sender that waits out the rest itself
 * (send-thread.ts): more than the worker's event loop usually stalls, so the main thread's
 * own lateness does not reach the slot.
 */
export const SEND_LEAD_MS = 50;

export class ApiCaller {
  constructor(
    private readonly deps: CallDeps,
    private readonly model: ModelSpec,
    private readonly opts: PlanOptions,
    readonly stats: CallStats = newCallStats(),
  ) {}

  /** One HTTP request with rate limiting and transient retries; throws what is left. */
  private async send(request: PlannedRequest): Promise<number[][]> {
    const body = requestBody(this.opts, request);
    const tokens = request.inputs.reduce((s, i) => s + i.usageTokens, 0);
    const limits = { rpm: this.model.rpm, tpm: this.model.tpm };
    const metrics = this.deps.metrics ?? NO_METRICS;
    const name = this.model.name;
    const embedRequest = {
      model: body.model,
      contents: body.input.contents,
      parameters: body.parameters ?? {},
      dimension: this.opts.dimension,
    };
    // bind late: the body is serialized before the send time is reserved, so the request
    // leaves at its slot (the embedder keeps its connections alive)
    const { embedder } = this.deps;
    const call = embedder.prepare ? embedder.prepare(embedRequest) : { send: () => embedder.embed(embedRequest) };
    return pRetry(
      async () => {
        const { signal } = this.deps;
        const throttledSince = Date.now();
        // a sender still booting would miss the slot it is handed (and give it back)
        await call.ready?.();
        for (let throttled = 0; ; throttled++) {
          signal?.throwIfAborted();
          // a sender of its own (send-thread.ts) is handed the request SEND_LEAD_MS before its slot
          const timed = call.sendAt ? { leadMs: SEND_LEAD_MS } : undefined;
          let acquired = await this.deps.gate.acquire(name, limits, tokens, signal, timed);
          signal?.throwIfAborted();
          if (acquired.waitedMs > 0) metrics.rateLimitWait(name, acquired.waitedMs / 1000);
          let sent = performance.now();
          try {
            let result: EmbedResult | undefined;
            // once handed over, a request is not aborted (its answer would be paid and lost)
            while (call.sendAt && acquired.slot) {
              sent = Math.max(performance.now(), acquired.slot.dueAt);
              const out = await call.sendAt(acquired.slot);
              if (!('late' in out)) {
                result = out;
                break;
              }
              // it could not leave in time for its slot: the next one
              acquired = acquired.late ? await acquired.late() : { waitedMs: 0 };
            }
            if (!result) {
              sent = performance.now();
              result = await call.send();
            }
            const { ticket } = acquired;
            metrics.request(name, 'ok', '', (performance.now() - sent) / 1000);
            metrics.embedded(name, request.inputs.length, result.usage.textTokens, result.usage.imageTokens);
            this.stats.requests += 1;
            this.stats.inputs += request.inputs.length;
            this.stats.textTokens += result.usage.textTokens;
            this.stats.imageTokens += result.usage.imageTokens;
            this.stats.requestIds.push(result.requestId);
            // the reservation held the estimate (videos are estimated from their size): now the real cost
            // (best effort: a failure here must not fail a request that was answered and paid)
            if (ticket !== undefined)
              await this.deps.gate
                .settle?.(name, ticket, result.usage.textTokens + result.usage.imageTokens)
                .catch(() => undefined);
            return result.vectors;
          } catch (err) {
            const e = err instanceof EmbeddingApiError ? err : undefined;
            metrics.request(name, e?.decision ?? 'error', e?.code ?? 'unknown', (performance.now() - sent) / 1000);
            if (!e || e.decision !== 'rate-limited') throw err;
            this.stats.throttled += 1;
            const quotaMs = this.deps.quotaPauseAfterMs ?? 30 * 60_000;
            if (Date.now() - throttledSince >= quotaMs) {
              throw new EmbeddingApiError(
                {
                  status: e.status,
                  code: e.code,
                  message: `refused with 429 for ${Math.round((Date.now() - throttledSince) / 1000)} s without a break (${e.providerMessage}): the account's quota looks gone; check it in the provider's console`,
                  requestId: e.requestId,
                },
                'fatal',
              );
            }
            const retryAfterMs = e.retryAfterSeconds !== undefined ? e.retryAfterSeconds * 1000 : undefined;
            // the shared limiter learns from the 429 (a wider margin or a lower rate, for every worker)
            await this.deps.gate.throttled(name, acquired.ticket, retryAfterMs);
            // an adaptive limiter's next slot already waits its turn: the first 429 of a
            // request asks again at once, a repeat backs off (1 s doubling to 30 s)
            const first = throttled === 0 && this.deps.gate.adaptive === true;
            const wait =
              retryAfterMs ??
              (first ? 0 : throttleBackoff(this.deps.gate.adaptive === true ? throttled - 1 : throttled));
            if (wait > 0) {
              metrics.rateLimitWait(name, wait / 1000);
              await sleep(wait, undefined, signal ? { signal } : {});
            }
          }
        }
      },
      {
        retries: (this.deps.attempts ?? 6) - 1,
        minTimeout: this.deps.backoffMs ?? 500,
        factor: 2,
        maxTimeout: 20_000,
        randomize: true,
        ...(this.deps.signal ? { signal: this.deps.signal } : {}),
        shouldRetry: ({ error }) => error instanceof EmbeddingApiError && error.decision === 'retryable',
        onFailedAttempt: ({ error, retriesLeft }) => {
          if (retriesLeft > 0 && error instanceof EmbeddingApiError && error.decision === 'retryable') {
            this.stats.retries += 1;
            metrics.retry(name);
          }
        },
      },
    );
  }

  /** Embeds a request; inputs the API refuses are isolated, the others still embed. */
  async embed(request: PlannedRequest, resigned = false): Promise<Embedded> {
    try {
      const vectors = await this.send(request);
      return { done: request.inputs.map((input, i) => ({ input, vector: vectors[i] ?? [] })), refused: [] };
    } catch (err) {
      if (!(err instanceof EmbeddingApiError)) throw err;
      if (err.decision === 'bad-response') {
        // billed: its inputs fail rather than being bought again; twice means the
        // collection and the model disagree, and nothing more should be bought
        const seen = this.deps.badResponses ?? { count: 0 };
        seen.count += 1;
        if (seen.count >= 2) {
          throw new EmbeddingApiError(
            {
              status: 200,
              code: 'bad-response',
              message: `${seen.count} answers did not fit their requests (last: ${err.providerMessage}): the collection's dimension ${this.opts.dimension} and what ${this.model.name} returns disagree`,
              requestId: err.requestId,
            },
            'fatal',
          );
        }
        return { done: [], refused: request.inputs.map((input) => ({ input, error: err })) };
      }
      if (err.decision === 'request') {
        const whole = new EmbeddingApiError(
          {
            status: err.status,
            code: err.code,
            message: `${err.providerMessage} (the API refused the whole request for a parameter, not for an input: not split into smaller requests)`,
            requestId: err.requestId,
          },
          'request',
        );
        return { done: [], refused: request.inputs.map((input) => ({ input, error: whole })) };
      }
      const poison500 = err.decision === 'retryable' && err.status === 500;
      const isolatable =
        err.decision === 'input' || err.decision === 'split' || err.decision === 'redownload' || poison500;
      if (!isolatable) throw err;
      if (request.inputs.length > 1) {
        const mid = Math.ceil(request.inputs.length / 2);
        const a = await this.embed(requestOf(request.inputs.slice(0, mid)), resigned);
        const b = await this.embed(requestOf(request.inputs.slice(mid)), resigned);
        return { done: [...a.done, ...b.done], refused: [...a.refused, ...b.refused] };
      }
      const input = request.inputs[0]!;
      if (err.decision === 'redownload' && !resigned) {
        const fresh = await this.deps.resign(input);
        if (fresh) return this.embed(requestOf([fresh]), true);
      }
      return { done: [], refused: [{ input, error: err }] };
    }
  }
}
