/**
 * The simulator states the contract on its own (src/simulator/contract.ts, written from the
 * provider's API page); the pipeline has its catalog (src/models.ts). This file is where a
 * wrong limit on either side fails: the two tables must agree field by field, and a
 * catalog that drifts is caught by the simulator refusing what the drifted planner sends.
 */
import { describe, expect, it } from '@jest/globals';
import { imageShapeProblem, imageTokens } from '../../src/media.js';
import { BUILTIN_MODELS, MODEL_NAMES, resolveModel } from '../../src/models.js';
import type { ModelSpec } from '../../src/models.js';
import { DEFAULT_MAX_BODY_BYTES, TEMPLATE_TOKEN_MARGIN } from '../../src/plan-limits.js';
import { planRequests } from '../../src/planner.js';
import { requestBody } from '../../src/request-body.js';
import { qwenTokens } from '../../src/tokens.js';
import {
  BODY_CAP_BYTES,
  CONTRACT_MODELS,
  CONTRACT_MODEL_NAMES,
  TEMPLATE_TOKENS_PER_TEXT,
  contractModel,
  imageShapeRefusal,
  patchTokens,
} from '../../src/simulator/contract.js';
import { parseEnvelope } from '../../src/simulator/contents.js';
import { Refused } from '../../src/simulator/refusals.js';
import { validateRequest } from '../../src/simulator/validate.js';
import { PAGE_TEMPLATE_TOKENS, alphaWords } from '../support/token-fixtures.js';

/** The limits and facts of an entry: everything but the free-text notes. */
const limitsOf = (spec: ModelSpec): Omit<ModelSpec, 'notes'> => {
  const { notes: _notes, ...rest } = spec;
  return rest;
};

describe('the catalog and the simulator state the same contract', () => {
  it('name the same models', () => {
    expect([...MODEL_NAMES].sort()).toEqual([...CONTRACT_MODEL_NAMES].sort());
  });

  it.each(MODEL_NAMES)('%s: every limit, format, dimension, price and rate limit is the same on both sides', (name) => {
    expect(limitsOf(BUILTIN_MODELS[name]!)).toEqual(limitsOf(CONTRACT_MODELS[name]!));
  });

  // the figures the API page states, written once more here so that a value both tables got
  // wrong in the same way still fails
  it.each([
    ['qwen3-vl-embedding', 32_000, 'per-text', 20, 1, 5_000_000, 50_000_000, 2560],
    ['tongyi-embedding-vision-plus', 1024, 'per-request', null, null, 3_000_000, 10_000_000, 1152],
    ['tongyi-embedding-vision-flash', 1024, 'per-request', null, null, 3_000_000, 10_000_000, 768],
    ['multimodal-embedding-v1', 512, 'per-text', 20, 1, 3_000_000, 10_000_000, 1024],
  ] as const)(
    '%s: the page says %d tokens (%s), %p elements, %p images, %d-byte images, %d-byte videos, %d dimensions by default',
    (name, tokens, scope, elements, images, imageBytes, videoBytes, dim) => {
      expect(CONTRACT_MODELS[name]).toMatchObject({
        textTokenLimit: tokens,
        textLimitScope: scope,
        maxElements: elements,
        maxImagesPerRequest: images,
        imageMaxBytes: imageBytes,
        videoMaxBytes: videoBytes,
        defaultDimension: dim,
      });
    },
  );

  it('cap bodies at the same 6,291,456 bytes', () => {
    expect(BODY_CAP_BYTES).toBe(6_291_456);
    expect(DEFAULT_MAX_BODY_BYTES).toBe(BODY_CAP_BYTES);
  });

  it(`charge the page's ${PAGE_TEMPLATE_TOKENS} template tokens a text, and the planner keeps more than that free`, () => {
    expect(TEMPLATE_TOKENS_PER_TEXT).toBe(PAGE_TEMPLATE_TOKENS);
    expect(TEMPLATE_TOKEN_MARGIN).toBe(8);
    expect(TEMPLATE_TOKEN_MARGIN).toBeGreaterThan(TEMPLATE_TOKENS_PER_TEXT);
  });

  it('apply the same shape rule and the same image-token rule', () => {
    for (const [w, h] of [
      [9, 100],
      [10, 10],
      [10, 2000],
      [10, 2001],
      [2001, 10],
      [64, 48],
      [640, 480],
      [4000, 3000],
      [33, 33],
      [1, 1],
    ] as const) {
      expect([w, h, imageShapeRefusal(w, h) === undefined]).toEqual([w, h, imageShapeProblem(w, h) === undefined]);
      expect([w, h, patchTokens(w, h)]).toEqual([w, h, imageTokens(w, h)]);
    }
    // stated: 64x48 is 3 patches, raised to 4; 640x480 is 20 x 15; 4000x3000 is scaled by sqrt(1800 / 11718.75) to 48 x 36
    expect([patchTokens(64, 48), patchTokens(640, 480), patchTokens(4000, 3000)]).toEqual([4, 300, 1728]);
  });

  it('move together under an override, as MODEL_OVERRIDES promises', () => {
    const overrides = { 'qwen3-vl-embedding': { maxImagesPerRequest: 5, imageMaxBytes: 10_000_000 } };
    expect(limitsOf(contractModel('qwen3-vl-embedding', overrides))).toEqual(
      limitsOf(resolveModel('qwen3-vl-embedding', overrides)),
    );
  });
});

describe('a wrong limit in the catalog fails at the simulator', () => {
  const refusalOf = async (spec: ModelSpec, texts: string[]): Promise<string | undefined> => {
    const plan = planRequests(
      texts.map((text, i) => ({ kind: 'text', source: `t${i}`, text, tokens: qwenTokens.count(text) })),
      { model: spec, dimension: spec.defaultDimension },
      qwenTokens,
    );
    expect(plan.requests).toHaveLength(1);
    const body = requestBody({ model: spec, dimension: spec.defaultDimension }, plan.requests[0]!);
    try {
      await validateRequest(parseEnvelope(JSON.parse(JSON.stringify(body)), {}), {
        maxDataUriBytes: 10 * 1024 * 1024,
        downloadTimeoutMs: 1000,
      });
      return undefined;
    } catch (err) {
      if (err instanceof Refused) return err.refusal.limit;
      throw err;
    }
  };

  it('a catalog that says multimodal-embedding-v1 takes 600 tokens plans a 590-token text the simulator refuses', async () => {
    const wrong = { ...BUILTIN_MODELS['multimodal-embedding-v1']!, textTokenLimit: 600 };
    expect(await refusalOf(wrong, [alphaWords(590)])).toBe('text-tokens');
    // the right catalog splits it into chunks the simulator takes
    const right = resolveModel('multimodal-embedding-v1');
    const plan = planRequests(
      [{ kind: 'text', source: 't', text: alphaWords(590), tokens: 590 }],
      { model: right, dimension: 1024 },
      qwenTokens,
    );
    expect(plan.requests.flatMap((r) => r.inputs.map((i) => i.textTokens))).toEqual([
      512 - TEMPLATE_TOKEN_MARGIN,
      590 - (512 - TEMPLATE_TOKEN_MARGIN),
    ]);
  });

  it('a catalog with no token margin fills a chunk to the limit, which the template tokens put over it', async () => {
    const plan = planRequests(
      [{ kind: 'text', source: 't', text: alphaWords(600), tokens: 600 }],
      { model: resolveModel('multimodal-embedding-v1'), dimension: 1024, tokenMargin: 0 },
      qwenTokens,
    );
    const first = plan.requests[0]!;
    expect(first.inputs[0]?.textTokens).toBe(512);
    await expect(
      validateRequest(
        parseEnvelope(
          JSON.parse(
            JSON.stringify(requestBody({ model: resolveModel('multimodal-embedding-v1'), dimension: 1024 }, first)),
          ),
          {},
        ),
        {
          maxDataUriBytes: 10 * 1024 * 1024,
          downloadTimeoutMs: 1000,
        },
      ),
    ).rejects.toMatchObject({ refusal: { status: 400, code: 'InvalidParameter', limit: 'text-tokens' } });
  });

  it('a catalog that lets tongyi-embedding-vision-plus take 2,000 tokens a request packs a request the simulator refuses', async () => {
    const wrong = { ...BUILTIN_MODELS['tongyi-embedding-vision-plus']!, textTokenLimit: 2000 };
    expect(await refusalOf(wrong, [alphaWords(600), alphaWords(600)])).toBe('text-tokens');
  });
});
