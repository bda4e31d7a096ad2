import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { IMAGE_FORMATS, MODEL_NAMES, VIDEO_FORMATS, resolveModel } from '../../src/models.js';
import type { ModelSpec } from '../../src/models.js';
import { TEMPLATE_TOKEN_MARGIN } from '../../src/plan-limits.js';
import { planRequests } from '../../src/planner.js';
import { requestBody } from '../../src/request-body.js';
import type { PlanOptions } from '../../src/plan-limits.js';
import type { Plan, PlannedRequest } from '../../src/planner.js';
import type { PreparedImage, PreparedInput } from '../../src/prepared-input.js';
import { joinChunks, qwenTokens } from '../../src/tokens.js';

type Chunk = { text: string; charStart: number; charEnd: number };

/**
 * Chunks reassemble to the source: each is the source's slice at its range, they come in
 * order, and only whitespace (dropped blank chunks) lies between or around them.
 */
function reassemble(source: string, chunks: Chunk[]): string {
  let end = 0;
  let start = -1;
  const pieces: Chunk[] = [];
  for (const c of chunks) {
    expect(c.text).toBe(source.slice(c.charStart, c.charEnd));
    expect(c.charStart).toBeGreaterThan(start); // in order, each one moving forward
    expect(c.charEnd).toBeGreaterThan(end);
    start = c.charStart;
    if (c.charStart > end) {
      expect(source.slice(end, c.charStart).trim()).toBe('');
      pieces.push({ text: source.slice(end, c.charStart), charStart: end, charEnd: c.charStart });
    }
    pieces.push(c);
    end = Math.max(end, c.charEnd);
  }
  expect(source.slice(end).trim()).toBe('');
  pieces.push({ text: source.slice(end), charStart: end, charEnd: source.length });
  return joinChunks(pieces);
}

const MB = 1_000_000;

const imageArb: fc.Arbitrary<PreparedImage> = fc
  .record({
    format: fc.constantFrom(...IMAGE_FORMATS),
    width: fc.integer({ min: 1, max: 5000 }),
    height: fc.integer({ min: 1, max: 5000 }),
    bytes: fc.integer({ min: 1, max: 6 * MB }),
    inline: fc.boolean(),
    inlineBytes: fc.integer({ min: 1, max: 4_000 }),
  })
  .map(({ inline, inlineBytes, ...rest }) => ({
    ...rest,
    payload: inline
      ? { kind: 'inline' as const, data: new Uint8Array(inlineBytes) }
      : { kind: 'url' as const, url: `https://img.example/${rest.bytes}.${rest.format}` },
  }));

const videoArb = fc.record({
  format: fc.constantFrom(...VIDEO_FORMATS),
  bytes: fc.integer({ min: 1, max: 60 * MB }),
  url: fc.webUrl(),
});

// Words from several scripts so chunk boundaries fall inside multi-byte characters.
const wordArb = fc.constantFrom(
  'alpha',
  'beta',
  'gamma',
  '你好',
  '世界',
  'データ',
  'ümlaut',
  '🎉',
  'x',
  '\n',
  '  ',
  'Ελλάδα',
  'ok.',
);
const textArb = fc.array(wordArb, { minLength: 0, maxLength: 300, size: 'max' }).map((w) => w.join(' '));

const inputArb = (source: string): fc.Arbitrary<PreparedInput> =>
  fc.oneof(
    {
      weight: 6,
      arbitrary: textArb.map((text) => ({ kind: 'text' as const, source, text, tokens: qwenTokens.count(text) })),
    },
    { weight: 2, arbitrary: imageArb.map((image) => ({ kind: 'image' as const, source, image })) },
    { weight: 1, arbitrary: videoArb.map((video) => ({ kind: 'video' as const, source, video })) },
    {
      weight: 1,
      arbitrary: fc
        .record({
          text: fc.option(textArb, { nil: undefined }),
          image: fc.option(imageArb, { nil: undefined }),
          video: fc.option(videoArb, { nil: undefined }),
        })
        .map(({ text, image, video }) => ({
          kind: 'fused' as const,
          source,
          ...(text !== undefined ? { text: { text, tokens: qwenTokens.count(text) } } : {}),
          ...(image ? { image } : {}),
          ...(video ? { video } : {}),
        })),
    },
    {
      weight: 1,
      arbitrary: fc
        .array(imageArb, { maxLength: 10 })
        .map((images) => ({ kind: 'multi_images' as const, source, images })),
    },
  );

const mixArb = fc
  .integer({ min: 0, max: 40 })
  .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => inputArb(`obj-${i}`))));

const optionsArb = (model: ModelSpec): fc.Arbitrary<PlanOptions> =>
  fc
    .record({
      dimension: fc.constantFrom(...model.dimensions),
      maxBodyBytes: fc.constantFrom(6 * 1024 * 1024, 100_000, 12_000),
      chunkTokens: fc.option(fc.integer({ min: 16, max: 600 }), { nil: undefined }),
      chunkOverlap: fc.integer({ min: 0, max: 8 }),
      tokenMargin: fc.integer({ min: 0, max: 4 }),
    })
    .map((o) => ({ model, ...o }));

function tokenCap(opts: PlanOptions): number {
  const cap = opts.model.textTokenLimit - (opts.tokenMargin ?? TEMPLATE_TOKEN_MARGIN);
  return Math.min(cap, opts.chunkTokens ?? cap);
}

/** Every limit of the model, checked on one planned request. */
function expectWithinLimits(request: PlannedRequest, opts: PlanOptions): void {
  const { model } = opts;
  const body = Buffer.byteLength(JSON.stringify(requestBody(opts, request)));
  expect(body).toBe(request.bodyBytes);
  expect(body).toBeLessThanOrEqual(opts.maxBodyBytes ?? Infinity);
  expect(request.inputs.length).toBeGreaterThan(0);
  expect(request.inputs.length).toBeLessThanOrEqual(model.maxElements ?? Infinity);
  expect(request.images).toBeLessThanOrEqual(model.maxImagesPerRequest ?? Infinity);
  expect(request.videos).toBeLessThanOrEqual(model.maxVideosPerRequest ?? Infinity);
  let requestTokens = 0;
  let texts = 0;
  let images = 0;
  let videos = 0;
  for (const input of request.inputs) {
    const c = input.content;
    const text = typeof c === 'string' ? c : c.text;
    if (text !== undefined) {
      const tokens = qwenTokens.count(text);
      expect(tokens).toBe(input.textTokens);
      expect(tokens).toBeLessThanOrEqual(tokenCap(opts));
      expect(text.trim().length).toBeGreaterThan(0);
      requestTokens += tokens;
      texts += 1;
    }
    if (typeof c !== 'string') {
      const parts = ['text', 'image', 'video'].filter((k) => k in c).length;
      if (parts > 1) expect(model.fused).toBe(true);
      if (c.multi_images) {
        expect(model.multiImagesMax).toBeGreaterThanOrEqual(c.multi_images.length);
        images += c.multi_images.length;
      }
      if (c.image) images += 1;
      if (c.video) videos += 1;
    }
  }
  expect(images).toBe(request.images);
  expect(videos).toBe(request.videos);
  // each text also carries the server's template tokens, which the margin stands for
  const margin = opts.tokenMargin ?? TEMPLATE_TOKEN_MARGIN;
  if (model.textLimitScope === 'per-request')
    expect(requestTokens + texts * margin).toBeLessThanOrEqual(model.textTokenLimit);
}

/** Dense packing: no two requests could have been one (first-fit leaves no such pair). */
function expectNoMergeablePair(plan: Plan, opts: PlanOptions): void {
  const { model } = opts;
  const reqs = plan.requests;
  for (let i = 0; i < reqs.length; i++) {
    for (let j = i + 1; j < reqs.length; j++) {
      const a = reqs[i]!;
      const b = reqs[j]!;
      const mergedBytes =
        a.bodyBytes + b.bodyBytes - Buffer.byteLength(JSON.stringify(requestBody(opts, { ...a, inputs: [] }))) + 1;
      const fitsMerged =
        a.inputs.length + b.inputs.length <= (model.maxElements ?? Infinity) &&
        a.images + b.images <= (model.maxImagesPerRequest ?? Infinity) &&
        a.videos + b.videos <= (model.maxVideosPerRequest ?? Infinity) &&
        (model.textLimitScope === 'per-text' || a.limitTokens + b.limitTokens <= model.textTokenLimit) &&
        mergedBytes <= (opts.maxBodyBytes ?? Infinity);
      expect(fitsMerged).toBe(false);
    }
  }
}

describe.each(MODEL_NAMES)('the planner for %s', (name) => {
  const model = resolveModel(name);

  it('never plans a request that breaks a limit, and accounts for every input exactly once', () => {
    fc.assert(
      fc.property(mixArb, optionsArb(model), (inputs, opts) => {
        const plan = planRequests(inputs, opts, qwenTokens);
        for (const r of plan.requests) expectWithinLimits(r, opts);
        expectNoMergeablePair(plan, opts);

        const planned = plan.requests.flatMap((r) => r.inputs);
        for (const input of inputs) {
          const rejected = plan.rejections.filter((r) => r.source === input.source);
          const mine = planned.filter((p) => p.source === input.source);
          if (rejected.length > 0) {
            // a rejected input is rejected once, and nothing of it is sent (chunks of a split text may each be rejected)
            expect(rejected.every((r) => r.reason.length > 0)).toBe(true);
            if (input.kind !== 'text') expect(rejected).toHaveLength(1);
            if (input.kind !== 'text') expect(mine).toHaveLength(0);
            continue;
          }
          expect(mine.length).toBeGreaterThan(0);
          const chunkIds = mine.map((m) => m.chunk).sort((x, y) => x - y);
          expect(chunkIds).toEqual(Array.from({ length: mine.length }, (_, k) => k));
          expect(mine.every((m) => m.chunkCount === mine.length)).toBe(true);
          if (input.kind === 'text') {
            const ordered = [...mine]
              .sort((x, y) => x.chunk - y.chunk)
              .map((m) => ({ text: m.content as string, charStart: m.charStart!, charEnd: m.charEnd! }));
            expect(reassemble(input.text, ordered)).toBe(input.text);
          } else {
            expect(mine).toHaveLength(1);
          }
        }
      }),
      { numRuns: 40, endOnFailure: true },
    );
  });
});

describe('packing density on text-only mixes', () => {
  const shortTexts = (n: number): PreparedInput[] =>
    Array.from({ length: n }, (_, i) => {
      const text = `document ${i}: ${'lorem ipsum dolor sit amet '.repeat(1 + (i % 30))}`;
      return { kind: 'text', source: `t${i}`, text, tokens: qwenTokens.count(text) };
    });

  it('fills qwen3-vl-embedding requests to the 20-element cap', () => {
    const model = resolveModel('qwen3-vl-embedding');
    const plan = planRequests(shortTexts(1000), { model, dimension: 1024 }, qwenTokens);
    expect(plan.rejections).toHaveLength(0);
    expect(plan.requests).toHaveLength(50);
    expect(plan.requests.every((r) => r.inputs.length === 20)).toBe(true);
  });

  it('packs tongyi-embedding-vision-plus requests close to the 1,024-token cap', () => {
    const model = resolveModel('tongyi-embedding-vision-plus');
    const inputs = shortTexts(1000);
    const plan = planRequests(inputs, { model, dimension: 1152 }, qwenTokens);
    // what counts toward the cap: each text's tokens plus the template margin kept for it
    const total = plan.requests.reduce((s, r) => s + r.limitTokens, 0);
    expect(total).toBe(
      inputs.reduce((s, i) => s + (i.kind === 'text' ? i.tokens : 0), 0) + inputs.length * TEMPLATE_TOKEN_MARGIN,
    );
    const lowerBound = Math.ceil(total / model.textTokenLimit);
    // first-fit decreasing is within 11/9 of optimal; on small items it is near the bound
    expect(plan.requests.length).toBeLessThanOrEqual(Math.ceil(lowerBound * 1.05) + 1);
    expect(
      plan.requests.every(
        (r) => r.limitTokens <= 1024 && r.textTokens + r.inputs.length * TEMPLATE_TOKEN_MARGIN <= 1024,
      ),
    ).toBe(true);
  });
});
