/**
 * The request planner: prepared inputs in, API requests out, each within the model's
 * limits (elements, images and videos per request, per-text or per-request tokens, byte
 * limits, request body size). Pure: no I/O; the tokenizer is passed in.
 *
 * Every input comes out exactly once: in one request, or as a rejection with a reason.
 * Texts over the limit are first split into token-bounded chunks that remember their
 * source and position. Requests are packed first-fit decreasing, which fills them as far
 * as the limits allow (the scarce resources, media and tokens, are placed first).
 *
 * What it takes: prepared-input.ts. The limits of a plan: plan-limits.ts. One input as
 * planned elements or a rejection: planned-input.ts. The body a request is sent as, and
 * what each part weighs: request-body.ts.
 */
import { limitsOf } from './plan-limits.js';
import type { Limits, PlanOptions } from './plan-limits.js';
import { expand } from './planned-input.js';
import type { PlannedInput, Rejection } from './planned-input.js';
import type { PreparedInput } from './prepared-input.js';
import type { TokenCounter } from './tokens.js';

export interface PlannedRequest {
  readonly inputs: readonly PlannedInput[];
  readonly textTokens: number;
  readonly limitTokens: number;
  readonly images: number;
  readonly videos: number;
  /** Exact size of the JSON body `requestBody()` builds. */
  readonly bodyBytes: number;
}

export interface Plan {
  readonly requests: readonly PlannedRequest[];
  readonly rejections: readonly Rejection[];
}

interface Bin {
  inputs: PlannedInput[];
  textTokens: number;
  limitTokens: number;
  images: number;
  videos: number;
  bodyBytes: number;
}

function fits(bin: Bin, input: PlannedInput, limits: Limits): boolean {
  return (
    bin.inputs.length + 1 <= limits.maxElements &&
    bin.images + input.images <= limits.maxImages &&
    bin.videos + input.videos <= limits.maxVideos &&
    bin.limitTokens + input.limitTokens <= limits.maxRequestTokens &&
    bin.bodyBytes + input.bodyBytes + (bin.inputs.length > 0 ? 1 : 0) <= limits.maxBodyBytes
  );
}

function add(bin: Bin, input: PlannedInput): void {
  bin.bodyBytes += input.bodyBytes + (bin.inputs.length > 0 ? 1 : 0);
  bin.inputs.push(input);
  bin.textTokens += input.textTokens;
  bin.limitTokens += input.limitTokens;
  bin.images += input.images;
  bin.videos += input.videos;
}

/** Plans `inputs` into requests within the model's limits; see the module comment. */
export function planRequests(inputs: readonly PreparedInput[], opts: PlanOptions, tokens: TokenCounter): Plan {
  const limits = limitsOf(opts);
  const planned: PlannedInput[] = [];
  const rejections: Rejection[] = [];
  for (const input of inputs) {
    for (const p of expand(input, opts, limits, tokens)) {
      if ('rejection' in p) rejections.push(p.rejection);
      else planned.push(p.input);
    }
  }

  // First-fit decreasing: scarce resources first (media, then tokens, then bytes).
  const order = planned
    .map((p, i) => ({ p, i }))
    .sort(
      (a, b) =>
        b.p.images + b.p.videos - (a.p.images + a.p.videos) ||
        b.p.limitTokens - a.p.limitTokens ||
        b.p.bodyBytes - a.p.bodyBytes ||
        a.i - b.i,
    );
  const bins: Bin[] = [];
  let open: Bin[] = []; // bins that may still take something
  for (const { p } of order) {
    const empty: Bin = {
      inputs: [],
      textTokens: 0,
      limitTokens: 0,
      images: 0,
      videos: 0,
      bodyBytes: limits.baseBodyBytes,
    };
    if (!fits(empty, p, limits)) {
      rejections.push({
        source: p.source,
        code: 'over-request-limit',
        reason: `a ${p.kind} input needs a ${limits.baseBodyBytes + p.bodyBytes}-byte request, over the ${limits.maxBodyBytes}-byte limit`,
      });
      continue;
    }
    let bin = open.find((b) => fits(b, p, limits));
    if (!bin) {
      bin = empty;
      bins.push(bin);
      open.push(bin);
    }
    add(bin, p);
    if (bin.inputs.length >= limits.maxElements) open = open.filter((b) => b !== bin);
  }
  // Keep each request's inputs in source order: easier to read in logs, same cost.
  const position = new Map(planned.map((p, i) => [p, i]));
  const requests = bins.map((b) => ({
    ...b,
    inputs: b.inputs.sort((x, y) => (position.get(x) ?? 0) - (position.get(y) ?? 0)),
  }));
  return { requests, rejections };
}
