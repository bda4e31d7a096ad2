import { describe, expect, it } from '@jest/globals';
import { ApiCaller, SEND_LEAD_MS } from '../../jobs/api-call.js';
import type { EmbedRequest, EmbedResult, Embedder } from '../../src/embedder.js';
import { EmbeddingApiError } from '../../src/errors.js';
import { NO_METRICS } from '../../src/metrics.js';
import { resolveModel } from '../../src/models.js';
import { planRequests } from '../../src/planner.js';
import type { PlannedInput } from '../../src/planned-input.js';
import type { PlannedRequest } from '../../src/planner.js';
import type { PreparedInput } from '../../src/prepared-input.js';
import type { Acquired, RateLimits, RequestGate } from '../../src/rate-limit.js';
import { qwenTokens } from '../../src/tokens.js';

const model = resolveModel('qwen3-vl-embedding');
const opts = { model, dimension: 256 };

function request(texts: string[]): PlannedRequest {
  const inputs: PreparedInput[] = texts.map((text, i) => ({
    kind: 'text',
    source: `k${i}`,
    text,
    tokens: qwenTokens.count(text),
  }));
  const plan = planRequests(inputs, opts, qwenTokens);
  expect(plan.requests).toHaveLength(1);
  return plan.requests[0]!;
}

const apiError = (status: number, code: string): EmbeddingApiError =>
  new EmbeddingApiError({ status, code, message: `${code} happened`, requestId: 'r' });

/** An embedder whose answer depends on the texts it is sent; it records every call. */
class ScriptedEmbedder implements Embedder {
  readonly calls: string[][] = [];
  constructor(private readonly answer: (texts: string[], call: number) => EmbeddingApiError | undefined) {}
  embed(req: EmbedRequest): Promise<EmbedResult> {
    const texts = req.contents.map((c) => (typeof c === 'string' ? c : (c.text ?? c.image ?? '')));
    this.calls.push(texts);
    const err = this.answer(texts, this.calls.length);
    if (err) return Promise.reject(err);
    return Promise.resolve({
      vectors: texts.map(() => new Array<number>(req.dimension).fill(0.1)),
      types: texts.map(() => 'text' as const),
      usage: { textTokens: 1, imageTokens: 0, totalTokens: 1 },
      requestId: `req-${this.calls.length}`,
    });
  }
}

class CountingGate implements RequestGate {
  acquired = 0;
  /** The ticket of each refused reservation, and the Retry-After it came with. */
  throttles: { ticket: string | undefined; retryAfterMs: number | undefined }[] = [];
  /** What happened, in order: `acquire:N`, `throttled:N`. */
  readonly events: string[] = [];
  constructor(readonly adaptive = false) {}
  acquire(_m: string, _l: RateLimits, _t: number): Promise<{ waitedMs: number; ticket: string }> {
    this.acquired += 1;
    this.events.push(`acquire:${this.acquired}`);
    return Promise.resolve({ waitedMs: 0, ticket: `t${this.acquired}` });
  }
  throttled(_m: string, ticket: string | undefined, retryAfterMs?: number): Promise<void> {
    this.throttles.push({ ticket, retryAfterMs });
    this.events.push(`throttled:${ticket ?? ''}`);
    return Promise.resolve();
  }
}

type Resign = (input: PlannedInput) => Promise<PlannedInput | undefined>;
const caller = (
  embedder: Embedder,
  gate: RequestGate = new CountingGate(),
  resign: Resign = () => Promise.resolve(undefined),
) => new ApiCaller({ embedder, gate, resign, attempts: 3, backoffMs: 1 }, model, opts);

describe('sending a planned request', () => {
  it('isolates the inputs the API refuses by bisection and embeds all the others', async () => {
    const texts = Array.from({ length: 20 }, (_, i) => (i === 3 || i === 17 ? `bad ${i}` : `good ${i}`));
    const embedder = new ScriptedEmbedder((sent) =>
      sent.some((t) => t.startsWith('bad')) ? apiError(400, 'DataInspectionFailed') : undefined,
    );
    const result = await caller(embedder).embed(request(texts));
    expect(result.refused.map((r) => r.input.content).sort()).toEqual(['bad 17', 'bad 3']);
    expect(result.refused.every((r) => r.error.code === 'DataInspectionFailed')).toBe(true);
    expect(result.done).toHaveLength(18);
    // bisection: halves of halves, fewer calls than the 1 + 20 of retrying every input alone
    expect(embedder.calls.length).toBeLessThan(21);
    expect(embedder.calls[1]).toHaveLength(10);
  });

  it('retries transient failures and counts them, without splitting the request', async () => {
    const embedder = new ScriptedEmbedder((_t, call) => (call <= 2 ? apiError(503, 'ModelUnavailable') : undefined));
    const c = caller(embedder);
    const result = await c.embed(request(['a', 'b', 'c']));
    expect(result.done).toHaveLength(3);
    expect(embedder.calls.map((x) => x.length)).toEqual([3, 3, 3]);
    expect(c.stats.retries).toBe(2);
  });

  it('waits out 429s through the shared gate without using up the attempts', async () => {
    const gate = new CountingGate();
    const embedder = new ScriptedEmbedder((_t, call) =>
      call <= 5 ? apiError(429, 'Throttling.RateQuota') : undefined,
    );
    const c = new ApiCaller(
      { embedder, gate, resign: () => Promise.resolve(undefined), attempts: 2, backoffMs: 1 },
      model,
      opts,
    );
    // 5 throttles with only 2 attempts: 429s must not count as attempts
    const sleeps = jestFastTimers();
    const result = await c.embed(request(['a', 'b']));
    sleeps.restore();
    expect(result.done).toHaveLength(2);
    expect(c.stats.throttled).toBe(5);
    expect(gate.throttles).toHaveLength(5);
    expect(gate.acquired).toBe(6);
  });

  it('reports each 429 with the ticket of the refused reservation; with an adaptive gate the first asks again at once, a repeat backs off', async () => {
    const gate = new CountingGate(true);
    const embedder = new ScriptedEmbedder((_t, call) =>
      call <= 3 ? apiError(429, 'Throttling.RateQuota') : undefined,
    );
    // the waits after a 429 are reported to the metrics as they are slept
    const waits: number[] = [];
    const metrics = { ...NO_METRICS, rateLimitWait: (_m: string, s: number) => void waits.push(s) };
    const c = new ApiCaller(
      { embedder, gate, resign: () => Promise.resolve(undefined), attempts: 2, backoffMs: 1, metrics },
      model,
      opts,
    );
    const result = await c.embed(request(['a', 'b']));
    expect(result.done).toHaveLength(2);
    expect(gate.events).toEqual([
      'acquire:1',
      'throttled:t1',
      'acquire:2',
      'throttled:t2',
      'acquire:3',
      'throttled:t3',
      'acquire:4',
    ]);
    expect(gate.throttles.every((t) => t.retryAfterMs === undefined)).toBe(true);
    // no wait after the first 429; then 0.5-1 s and 1-2 s (1 s doubling, with jitter)
    expect(waits).toHaveLength(2);
    expect(waits[0]).toBeGreaterThanOrEqual(0.5);
    expect(waits[0]).toBeLessThanOrEqual(1);
    expect(waits[1]).toBeGreaterThanOrEqual(1);
    expect(waits[1]).toBeLessThanOrEqual(2);
  });

  it('serializes the request before it reserves its send time (bind late)', async () => {
    const gate = new CountingGate();
    const order: string[] = [];
    const inner = new ScriptedEmbedder(() => undefined);
    const embedder: Embedder = {
      embed: (req) => inner.embed(req),
      prepare: (req) => {
        order.push(`prepare:${gate.acquired}`);
        return {
          send: () => {
            order.push(`send:${gate.acquired}`);
            return inner.embed(req);
          },
        };
      },
    };
    await new ApiCaller({ embedder, gate, resign: () => Promise.resolve(undefined) }, model, opts).embed(
      request(['a', 'b']),
    );
    expect(order).toEqual(['prepare:0', 'send:1']);
  });

  it('hands a timed sender its slot SEND_LEAD_MS ahead, takes the next slot when it could not leave in time, and reports a 429 with the ticket it was sent on', async () => {
    const events: string[] = [];
    let reservations = 0;
    const slotOf = (n: number): Acquired => ({
      waitedMs: 1,
      ticket: `t${n}`,
      slot: { dueAt: 1000 * n, toleranceMs: 15 },
      late: () => {
        events.push(`late:t${n}`);
        return Promise.resolve(slotOf(++reservations));
      },
    });
    const gate: RequestGate = {
      adaptive: true,
      acquire: (_m, _l, _t, _s, o) => {
        events.push(`acquire:lead=${o?.leadMs ?? 0}`);
        return Promise.resolve(slotOf(++reservations));
      },
      throttled: (_m, ticket) => {
        events.push(`throttled:${ticket ?? ''}`);
        return Promise.resolve();
      },
    };
    const inner = new ScriptedEmbedder(() => undefined);
    let sends = 0;
    const embedder: Embedder = {
      embed: (req) => inner.embed(req),
      prepare: (req) => ({
        send: () => Promise.reject(new Error('a timed sender is used when the gate gives a slot')),
        sendAt: (at) => {
          sends++;
          events.push(`sendAt:${at.dueAt}`);
          // the first hand-over comes too late for its slot, the second is refused 429, the third answered
          if (sends === 1) return Promise.resolve({ late: 40 });
          if (sends === 2) return Promise.reject(apiError(429, 'Throttling.RateQuota'));
          return inner.embed(req);
        },
      }),
    };
    const vectors = await new ApiCaller(
      { embedder, gate, resign: () => Promise.resolve(undefined) },
      model,
      opts,
    ).embed(request(['a', 'b']));
    expect(vectors.done).toHaveLength(2);
    expect(vectors.refused).toHaveLength(0);
    expect(events).toEqual([
      `acquire:lead=${SEND_LEAD_MS}`,
      'sendAt:1000',
      'late:t1',
      'sendAt:2000',
      'throttled:t2',
      `acquire:lead=${SEND_LEAD_MS}`,
      'sendAt:3000',
    ]);
  });

  it('isolates an input that keeps causing 500s once the retries are spent', async () => {
    const embedder = new ScriptedEmbedder((sent) =>
      sent.includes('poison') ? apiError(500, 'InternalError') : undefined,
    );
    const result = await caller(embedder).embed(request(['one', 'poison', 'three', 'four']));
    expect(result.refused.map((r) => [r.input.content, r.error.code])).toEqual([['poison', 'InternalError']]);
    expect(result.done.map((d) => d.input.content)).toEqual(['one', 'three', 'four']);
  });

  it('throws a fatal error at once, for the worker to pause the run', async () => {
    const embedder = new ScriptedEmbedder(() => apiError(401, 'InvalidApiKey'));
    await expect(caller(embedder).embed(request(['a', 'b']))).rejects.toMatchObject({
      code: 'InvalidApiKey',
      decision: 'fatal',
    });
    expect(embedder.calls).toHaveLength(1);
  });

  it('signs a URL again once when the service could not download it, then gives up on that input', async () => {
    let resigned = 0;
    const embedder = new ScriptedEmbedder(() => apiError(400, 'InternalError.Algo.InvalidParameter'));
    const c = caller(embedder, new CountingGate(), (input) => {
      resigned += 1;
      return Promise.resolve({ ...input, content: 'fresh' });
    });
    const result = await c.embed(request(['only']));
    expect(resigned).toBe(1);
    expect(embedder.calls).toEqual([['only'], ['fresh']]);
    expect(result.refused).toHaveLength(1);
  });

  it('fails every input of a request refused for a parameter after one request, without bisecting it', async () => {
    const refusal = new EmbeddingApiError({
      status: 400,
      code: 'InvalidParameter',
      message:
        'dimension 3072 is not supported by qwen3-vl-embedding (supported: 2560, 2048, 1536, 1024, 768, 512, 256).',
      requestId: 'r',
    });
    expect(refusal.decision).toBe('request');
    const embedder = new ScriptedEmbedder(() => refusal);
    const texts = Array.from({ length: 20 }, (_, i) => `text ${i}`);
    const result = await caller(embedder).embed(request(texts));
    expect(embedder.calls).toHaveLength(1);
    expect(result.done).toHaveLength(0);
    expect(result.refused).toHaveLength(20);
    for (const r of result.refused) {
      expect(r.error).toMatchObject({ code: 'InvalidParameter', decision: 'request' });
      expect(r.error.providerMessage).toBe(
        'dimension 3072 is not supported by qwen3-vl-embedding (supported: 2560, 2048, 1536, 1024, 768, 512, 256). (the API refused the whole request for a parameter, not for an input: not split into smaller requests)',
      );
    }
  });
});

describe('which 400s refuse the request rather than an input', () => {
  const decision = (message: string, code = 'InvalidParameter'): string =>
    new EmbeddingApiError({ status: 400, code, message }).decision;

  it('takes a message naming a request parameter and no element as the whole request refused', () => {
    expect(decision('dimension 3072 is not supported by qwen3-vl-embedding (supported: 2560, 2048).')).toBe('request');
    expect(
      decision('multimodal-embedding-v1 does not accept the dimension parameter (its vectors have 1024 dimensions).'),
    ).toBe('request');
    expect(decision('fps must be a number in [0, 1], got 2.')).toBe('request');
    expect(decision('instruct must be a string.')).toBe('request');
    expect(decision('output_type "sparse" is not supported (only "dense").')).toBe('request');
  });

  it('keeps refusals of an element, or naming none, as an input to isolate', () => {
    expect(decision('contents[3]: image of 9x9 pixels: each side must be at least 10 px.')).toBe('input');
    expect(decision('The image dimension is too small.')).toBe('input');
    expect(decision('url error, please check url!')).toBe('input');
    expect(decision('Input data may contain inappropriate content.', 'DataInspectionFailed')).toBe('input');
    expect(decision('Failed to download multimodal content', 'InternalError.Algo.InvalidParameter')).toBe('redownload');
  });
});

/** Makes setTimeout immediate for the 429 backoff sleeps of one test. */
function jestFastTimers(): { restore(): void } {
  const original = globalThis.setTimeout;
  globalThis.setTimeout = ((fn: () => void) => original(fn, 0)) as typeof setTimeout;
  return { restore: () => (globalThis.setTimeout = original) };
}
