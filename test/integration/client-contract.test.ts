/**
 * The API client against the contract (../../../shared/reference/dashscope-contract.md),
 * over real HTTP: the real DashScopeClient talks to the simulator on a free port, and
 * its requests are built the way the pipeline builds them (prepare -> planRequests ->
 * requestBody). Answers the simulator cannot give (a malformed 200, a gateway page, a
 * Retry-After header) come from a tiny local server; codes no server here produces are
 * checked on `classifyApiError` directly.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { EMBEDDING_PATH } from '../../src/api.js';
import type { ApiContent, ApiParameters, EmbeddingType } from '../../src/api.js';
import { DashScopeClient } from '../../src/embedder.js';
import type { EmbedRequest, EmbedResult } from '../../src/embedder.js';
import { EmbeddingApiError, classifyApiError } from '../../src/errors.js';
import type { RetryDecision } from '../../src/errors.js';
import { imageTokens } from '../../src/media.js';
import { MODEL_NAMES, resolveModel } from '../../src/models.js';
import type { ModelSpec } from '../../src/models.js';
import { planRequests } from '../../src/planner.js';
import { requestBody } from '../../src/request-body.js';
import type { PlanOptions } from '../../src/plan-limits.js';
import type { PlannedInput } from '../../src/planned-input.js';
import type { ImagePayload, PreparedImage, PreparedInput, PreparedVideo } from '../../src/prepared-input.js';
import { prepareImage, prepareImageBytes, prepareText, prepareVideo } from '../../src/prepare.js';
import type { Prepared } from '../../src/prepare.js';
import { mulberry32 } from '../../src/simulator/prng.js';
import {
  DATA_INSPECTION_MARKER,
  DEFAULT_VIDEO_TOKEN_RULE,
  INTERNAL_ERROR_MARKER,
  mp4DurationSeconds,
  startSimulator,
  videoTokens,
} from '../../src/simulator/index.js';
import type { FaultOptions, Simulator, SimulatorPatch } from '../../src/simulator/index.js';
import { qwenTokens } from '../../src/tokens.js';
import { dataUri, gif, jpeg, mp4, png } from '../support/media-fixtures.js';

/** Distinctive, so a leak into any error text is found by a plain substring search. */
const KEY = 'sk-test-SECRET-0123456789abcdef';
const WRONG_KEY = 'sk-test-WRONG-SECRET-fedcba9876543210';
const SECRETS = [KEY, WRONG_KEY, '0123456789abcdef', 'fedcba9876543210'];

// ---------- local HTTP servers ----------

interface Local {
  readonly server: Server;
  readonly url: string;
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Local> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function shut(local: Local | undefined): Promise<void> {
  if (!local) return;
  local.server.closeAllConnections();
  await new Promise<void>((resolve) => local.server.close(() => resolve()));
}

const PNG = png(64, 48);
const PNG_2 = png(120, 90, 77);
const JPEG = jpeg(640, 480);
const CLIP = mp4(12);
/** A real PNG header and pixels, then padding: one byte over the tongyi 3 MB limit. */
const HUGE_PNG = Buffer.concat([png(40, 40, 3), Buffer.alloc(3_000_001 - png(40, 40, 3).length, 1)]);

/** What the media server serves; the batch test adds its own files. */
const FILES = new Map<string, Buffer>([
  ['/photo.png', PNG],
  ['/photo.jpg', JPEG],
  ['/clip.mp4', CLIP],
  ['/huge.png', HUGE_PNG],
]);

let media: Local | undefined;
const mediaUrl = (path: string): string => `${media?.url ?? 'http://127.0.0.1:1'}${path}`;

beforeAll(async () => {
  media = await listen((req, res) => {
    const body = FILES.get(req.url ?? '/');
    if (!body) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
});

afterAll(async () => {
  await shut(media);
});

// ---------- building requests the pipeline's way ----------

function ok<T>(prepared: Prepared<T>): T {
  if ('failure' in prepared)
    throw new Error(`test input not prepared: ${prepared.failure.source}: ${prepared.failure.reason}`);
  return prepared.ok;
}

const text = (source: string, value: string): PreparedInput =>
  ok(prepareText(source, Buffer.from(value, 'utf8'), qwenTokens));
const image = (source: string, bytes: Buffer, payload?: ImagePayload): PreparedInput =>
  ok(prepareImage(source, bytes, payload));
const imageAt = (source: string, bytes: Buffer, path: string): PreparedInput =>
  image(source, bytes, { kind: 'url', url: mediaUrl(path) });
const imageOf = (bytes: Buffer, payload?: ImagePayload): PreparedImage => ok(prepareImageBytes('part', bytes, payload));

function videoOf(source: string, bytes: Buffer, path: string): PreparedVideo {
  const prepared = ok(prepareVideo(source, bytes.length, 'mp4', mediaUrl(path), bytes.subarray(0, 64)));
  if (prepared.kind !== 'video') throw new Error('prepareVideo gave no video');
  return prepared.video;
}
const video = (source: string, bytes: Buffer, path: string): PreparedInput => ({
  kind: 'video',
  source,
  video: videoOf(source, bytes, path),
});

/** A dimension other than the default where the model takes the parameter, so it is seen to travel. */
function dimensionFor(spec: ModelSpec): number {
  return spec.acceptsDimension
    ? (spec.dimensions.find((d) => d !== spec.defaultDimension) ?? spec.defaultDimension)
    : spec.defaultDimension;
}

const norm = (v: readonly number[]): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

interface Embedded {
  readonly planned: PlannedInput;
  readonly vector: number[];
  readonly type: EmbeddingType;
}

interface Sent {
  readonly inputs: readonly PlannedInput[];
  readonly result: EmbedResult;
}

interface Outcome {
  readonly sent: Sent[];
  /** Every embedded element by its source id, in chunk order. */
  readonly bySource: Map<string, Embedded[]>;
}

/** Plans `inputs`, sends every planned request through the client and checks each answer's shape. */
async function embedAll(
  client: DashScopeClient,
  opts: PlanOptions,
  inputs: readonly PreparedInput[],
): Promise<Outcome> {
  const plan = planRequests(inputs, opts, qwenTokens);
  expect(plan.rejections).toEqual([]);
  const sent: Sent[] = [];
  const bySource = new Map<string, Embedded[]>();
  for (const request of plan.requests) {
    const body = requestBody(opts, request);
    const result = await client.embed({
      model: body.model,
      contents: body.input.contents,
      parameters: body.parameters ?? {},
      dimension: opts.dimension,
    });
    expect(result.vectors).toHaveLength(request.inputs.length);
    expect(result.types).toHaveLength(request.inputs.length);
    expect(result.requestId).not.toBe('');
    request.inputs.forEach((planned, i) => {
      const vector = result.vectors[i] ?? [];
      expect(vector).toHaveLength(opts.dimension);
      expect(norm(vector)).toBeCloseTo(1, 6);
      const list = bySource.get(planned.source) ?? [];
      list.push({ planned, vector, type: result.types[i] as EmbeddingType });
      bySource.set(planned.source, list);
    });
    sent.push({ inputs: request.inputs, result });
  }
  for (const list of bySource.values()) list.sort((a, b) => a.planned.chunk - b.planned.chunk);
  return { sent, bySource };
}

function only(outcome: Outcome, source: string): Embedded {
  const list = outcome.bySource.get(source);
  expect(list).toHaveLength(1);
  return (list as Embedded[])[0] as Embedded;
}

const usageSum = (outcome: Outcome, field: 'textTokens' | 'imageTokens' | 'totalTokens'): number =>
  outcome.sent.reduce((s, x) => s + x.result.usage[field], 0);

// ---------- asserting on errors ----------

function expectNoSecret(err: EmbeddingApiError): void {
  const renderings = {
    message: err.message,
    string: String(err),
    json: JSON.stringify(err),
    stack: err.stack ?? '',
    inspect: inspect(err, { depth: 5 }),
  };
  for (const [how, rendered] of Object.entries(renderings)) {
    for (const secret of SECRETS)
      expect({ how, rendered }).not.toEqual({ how, rendered: expect.stringContaining(secret) });
  }
}

interface Expected {
  readonly status: number;
  readonly code: string;
  readonly decision: RetryDecision;
  /** Whether the error carries the server's request id (only answers from a server have one). */
  readonly requestId: boolean;
  /** Matched against the provider's message. */
  readonly message?: RegExp;
}

async function expectApiError(call: Promise<unknown>, expected: Expected): Promise<EmbeddingApiError> {
  const caught = await call.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(caught).toBeInstanceOf(EmbeddingApiError);
  const err = caught as EmbeddingApiError;
  const seen = {
    status: err.status,
    code: err.code,
    decision: err.decision,
    requestId: typeof err.requestId === 'string' && err.requestId.length > 0,
    message: err.message,
  };
  expect(seen).toMatchObject({
    status: expected.status,
    code: expected.code,
    decision: expected.decision,
    requestId: expected.requestId,
  });
  if (expected.message) expect(err.providerMessage).toMatch(expected.message);
  expectNoSecret(err);
  return err;
}

/** A request written by hand, for what the planner would never send. */
const request = (model: string, contents: ApiContent[], parameters: ApiParameters = {}): EmbedRequest => ({
  model,
  contents,
  parameters,
  dimension: MODEL_NAMES.includes(model) ? resolveModel(model).defaultDimension : 1024,
});

const words = (n: number, seed = 1): string => {
  const vocab = [
    'river',
    'stone',
    'quiet',
    'amber',
    'lantern',
    'orbit',
    'harvest',
    'signal',
    'meadow',
    'copper',
    'thunder',
    'velvet',
    'north',
    'echo',
    'garden',
    'pixel',
  ];
  const rnd = mulberry32(seed);
  return Array.from({ length: n }, () => vocab[Math.floor(rnd() * vocab.length)] as string).join(' ');
};

// ---------- 1. success for every model and modality ----------

describe('the client embeds every modality of every model through the simulator', () => {
  let sim: Simulator;
  let client: DashScopeClient;

  beforeAll(async () => {
    sim = await startSimulator({ apiKey: KEY, rateLimits: 'off', allowPrivateUrls: true });
    client = new DashScopeClient({ apiKey: KEY, baseUrl: sim.url });
  });
  afterAll(async () => {
    await sim.close();
  });

  describe.each(MODEL_NAMES)('with %s', (name) => {
    const spec = resolveModel(name);
    const own = (type: EmbeddingType): EmbeddingType => (spec.independent ? type : 'vl');

    it('returns one unit vector per text at each dimension it takes, equal texts giving equal vectors', async () => {
      const a = 'The river runs quietly past the old mill.';
      const b = 'Copper lanterns hang over the harvest market.';
      const dimensions = spec.acceptsDimension ? spec.dimensions : [spec.defaultDimension];
      for (const dimension of dimensions) {
        const out = await embedAll(client, { model: spec, dimension }, [
          text('a', a),
          text('b', b),
          text('a-again', a),
        ]);
        expect(out.sent).toHaveLength(1);
        expect(only(out, 'a').vector).toEqual(only(out, 'a-again').vector);
        expect(only(out, 'a').vector).not.toEqual(only(out, 'b').vector);
        expect(out.sent[0]?.result.types).toEqual([own('text'), own('text'), own('text')]);
        const tokens = 2 * qwenTokens.count(a) + qwenTokens.count(b);
        expect(out.sent[0]?.result.usage).toEqual({ textTokens: tokens, imageTokens: 0, totalTokens: tokens });
      }
    });

    it('embeds an inline PNG, an inline JPEG and an image URL, the same bytes giving the same vector', async () => {
      const dimension = dimensionFor(spec);
      const out = await embedAll(client, { model: spec, dimension }, [
        image('png', PNG),
        image('jpeg', JPEG),
        imageAt('png-url', PNG, '/photo.png'),
      ]);
      expect(out.sent).toHaveLength(Math.ceil(3 / (spec.maxImagesPerRequest ?? 3)));
      const sentImages = out.sent.flatMap((s) =>
        s.inputs.map((i) => String((i.content as { image?: string }).image).replace(/;base64,.*$/s, '')),
      );
      expect(sentImages.sort()).toEqual(['data:image/jpeg', 'data:image/png', mediaUrl('/photo.png')].sort());
      expect(only(out, 'png').vector).toEqual(only(out, 'png-url').vector);
      expect(only(out, 'png').vector).not.toEqual(only(out, 'jpeg').vector);
      for (const source of ['png', 'jpeg', 'png-url']) expect(only(out, source).type).toBe(own('image'));
      expect(usageSum(out, 'textTokens')).toBe(0);
      expect(usageSum(out, 'imageTokens')).toBe(2 * imageTokens(64, 48) + imageTokens(640, 480));
    });

    it('embeds an MP4 video by URL beside a text, each at its own index', async () => {
      const dimension = dimensionFor(spec);
      const caption = 'A short clip of a meadow at dawn.';
      const out = await embedAll(client, { model: spec, dimension }, [
        text('caption', caption),
        video('clip', CLIP, '/clip.mp4'),
      ]);
      expect(out.sent).toHaveLength(1);
      expect(only(out, 'clip').type).toBe(own('video'));
      expect(only(out, 'caption').type).toBe(own('text'));
      expect(only(out, 'clip').vector).not.toEqual(only(out, 'caption').vector);
      expect(out.sent[0]?.result.usage.textTokens).toBe(qwenTokens.count(caption));
      expect(out.sent[0]?.result.usage.imageTokens).toBe(
        videoTokens(mp4DurationSeconds(CLIP) ?? NaN, 1, DEFAULT_VIDEO_TOKEN_RULE),
      );
    });

    if (spec.fused) {
      it('embeds a fused text, image and video element as one vl vector', async () => {
        const dimension = dimensionFor(spec);
        const caption = 'A red lantern by the river.';
        const fused: PreparedInput = {
          kind: 'fused',
          source: 'fused',
          text: { text: caption, tokens: qwenTokens.count(caption) },
          image: imageOf(PNG),
          video: videoOf('fused', CLIP, '/clip.mp4'),
        };
        const out = await embedAll(client, { model: spec, dimension }, [fused, text('alone', caption)]);
        expect(out.sent).toHaveLength(1);
        expect(out.sent[0]?.inputs[0]?.content).toEqual({
          text: caption,
          image: dataUri('png', PNG),
          video: mediaUrl('/clip.mp4'),
        });
        expect(only(out, 'fused').type).toBe('vl');
        expect(only(out, 'fused').vector).not.toEqual(only(out, 'alone').vector);
        expect(out.sent[0]?.result.usage.textTokens).toBe(2 * qwenTokens.count(caption));
        expect(out.sent[0]?.result.usage.imageTokens).toBe(
          imageTokens(64, 48) + videoTokens(12, 1, DEFAULT_VIDEO_TOKEN_RULE),
        );
      });
    }

    if (spec.multiImagesMax > 0) {
      it('embeds a multi_images group of inline and URL images as one vector', async () => {
        const dimension = dimensionFor(spec);
        const group: PreparedInput = {
          kind: 'multi_images',
          source: 'group',
          images: [imageOf(PNG), imageOf(JPEG, { kind: 'url', url: mediaUrl('/photo.jpg') }), imageOf(PNG_2)],
        };
        const out = await embedAll(client, { model: spec, dimension }, [group, image('single', PNG)]);
        expect(out.sent).toHaveLength(1);
        expect(only(out, 'group').type).toBe('multi_images');
        expect(only(out, 'single').type).toBe('image');
        expect(only(out, 'group').vector).not.toEqual(only(out, 'single').vector);
        expect(out.sent[0]?.result.usage.imageTokens).toBe(
          2 * imageTokens(64, 48) + imageTokens(640, 480) + imageTokens(120, 90),
        );
      });
    }
  });
});

// ---------- 2 and 3. every refusal is a typed error with its decision, and no key in it ----------

const QUIET_FAULTS: Partial<FaultOptions> = {
  error500Rate: 0,
  error503Rate: 0,
  burst429Rate: 0,
  hangRate: 0,
  dropRate: 0,
};

describe('the client turns every answer the simulator refuses with into a typed error, without the key', () => {
  let sim: Simulator;
  let client: DashScopeClient;

  beforeAll(async () => {
    sim = await startSimulator({ apiKey: KEY, rateLimits: 'off', allowPrivateUrls: true });
    client = new DashScopeClient({ apiKey: KEY, baseUrl: sim.url });
  });
  afterAll(async () => {
    await sim.close();
  });

  /** Runs `fn` with the simulator patched, then puts it back to no faults and no rate limits. */
  async function patched(patch: SimulatorPatch, fn: () => Promise<void>): Promise<void> {
    sim.configure(patch);
    sim.reset();
    try {
      await fn();
    } finally {
      sim.configure({ faults: QUIET_FAULTS, rateLimits: 'off' });
      sim.reset();
    }
  }

  const hello = (model = 'qwen3-vl-embedding'): EmbedRequest => request(model, ['hello']);

  it('stops the run on a wrong key: 401 InvalidApiKey is fatal', async () => {
    const wrong = new DashScopeClient({ apiKey: WRONG_KEY, baseUrl: sim.url });
    await expectApiError(wrong.embed(hello()), {
      status: 401,
      code: 'InvalidApiKey',
      decision: 'fatal',
      requestId: true,
      message: /^Invalid API-key provided\.$/,
    });
  });

  it('stops the run on an unknown model: 404 ModelNotFound is fatal', async () => {
    await expectApiError(client.embed(hello('qwen9-vl-embedding')), {
      status: 404,
      code: 'ModelNotFound',
      decision: 'fatal',
      requestId: true,
      message: /qwen9-vl-embedding/,
    });
  });

  const PNG_URI = dataUri('png', PNG);
  const invalid: { what: string; req: () => EmbedRequest; message: RegExp; decision?: 'input' | 'request' }[] = [
    {
      what: 'more elements than qwen3-vl-embedding takes',
      req: () =>
        request(
          'qwen3-vl-embedding',
          Array.from({ length: 21 }, (_, i) => `text ${i}`),
        ),
      message: /21 elements.*limit of 20/,
    },
    {
      what: 'more images than qwen3-vl-embedding takes',
      req: () => request('qwen3-vl-embedding', [{ image: PNG_URI }, { image: PNG_URI }]),
      message: /2 images.*limit of 1 /s,
    },
    {
      what: 'a multi_images group over 8 images',
      req: () => request('tongyi-embedding-vision-plus', [{ multi_images: Array.from({ length: 9 }, () => PNG_URI) }]),
      message: /9 images.*limit of 8/,
    },
    {
      what: 'a text over the per-text token limit',
      req: () => request('multimodal-embedding-v1', [words(600)]),
      message: /limit of 512 tokens per text/,
    },
    {
      what: 'texts over the per-request token limit',
      req: () => request('tongyi-embedding-vision-flash', [words(400, 1), words(400, 2), words(400, 3)]),
      message: /limit of 1024 tokens per request/,
    },
    {
      what: 'an image over the byte limit',
      req: () => request('tongyi-embedding-vision-plus', [{ image: mediaUrl('/huge.png') }]),
      message: /3000001 bytes.*limit of 3000000/,
    },
    {
      what: 'an image format the model does not take',
      req: () => request('tongyi-embedding-vision-plus', [{ image: dataUri('gif', gif(20, 20)) }]),
      message: /gif images are not supported/,
    },
    {
      what: 'an image reference that is no URL',
      req: () => request('qwen3-vl-embedding', [{ image: 'photo.png' }]),
      message: /^url error, please check url!$/,
    },
    {
      what: 'the dimension parameter on multimodal-embedding-v1',
      req: () => request('multimodal-embedding-v1', ['hello'], { dimension: 1024 }),
      message: /does not accept the dimension parameter/,
      // a parameter, not an input: the whole request is refused, splitting it cannot help
      decision: 'request',
    },
    {
      what: 'a dimension the model does not have',
      req: () => request('qwen3-vl-embedding', ['hello'], { dimension: 100 }),
      message: /dimension 100 is not supported/,
      decision: 'request',
    },
    {
      what: 'a blank text',
      req: () => request('qwen3-vl-embedding', ['hello', '   ']),
      message: /contents\[1\] is empty/,
    },
    {
      what: 'multi_images on qwen3-vl-embedding',
      req: () => request('qwen3-vl-embedding', [{ multi_images: [PNG_URI] }]),
      message: /does not support multi_images/,
    },
    {
      what: 'a fused element on tongyi-embedding-vision-plus',
      req: () => request('tongyi-embedding-vision-plus', [{ text: 'hello', image: PNG_URI }]),
      message: /does not support fused elements/,
    },
  ];

  it.each(invalid)(
    "refuses $what with 400 InvalidParameter, an input error (or the request's, for a parameter)",
    async ({ req, message, decision }) => {
      await expectApiError(client.embed(req()), {
        status: 400,
        code: 'InvalidParameter',
        decision: decision ?? 'input',
        requestId: true,
        message,
      });
    },
  );

  it('refuses content the moderation marker flags with 400 DataInspectionFailed, an input error', async () => {
    await expectApiError(client.embed(request('qwen3-vl-embedding', ['fine', `flagged ${DATA_INSPECTION_MARKER}`])), {
      status: 400,
      code: 'DataInspectionFailed',
      decision: 'input',
      requestId: true,
    });
  });

  it.each([
    ['an image', 'image', '/missing.png'],
    ['a video', 'video', '/missing.mp4'],
  ] as const)(
    'asks for a re-signed URL when %s URL answers 404: 400 InternalError.Algo.InvalidParameter',
    async (_what, kind, path) => {
      const content = kind === 'image' ? { image: mediaUrl(path) } : { video: mediaUrl(path) };
      await expectApiError(client.embed(request('tongyi-embedding-vision-plus', ['fine', content])), {
        status: 400,
        code: 'InternalError.Algo.InvalidParameter',
        decision: 'redownload',
        requestId: true,
        message: /^Failed to download multimodal content$/,
      });
    },
  );

  it("asks for a split when the body is over the simulator's maxBodyBytes: 413 BadRequest.TooLarge", async () => {
    const cap = sim.config().maxBodyBytes;
    await expectApiError(client.embed(request('qwen3-vl-embedding', ['x'.repeat(cap)])), {
      status: 413,
      code: 'BadRequest.TooLarge',
      decision: 'split',
      requestId: true,
      message: new RegExp(`over the ${cap}-byte limit`),
    });
  });

  it('slows down on 429 Throttling.RateQuota past the RPM, with no Retry-After to honour', async () => {
    await patched({ rateLimits: { 'qwen3-vl-embedding': { rpm: 1, tpm: null } } }, async () => {
      await client.embed(hello());
      const err = await expectApiError(client.embed(hello()), {
        status: 429,
        code: 'Throttling.RateQuota',
        decision: 'rate-limited',
        requestId: true,
      });
      expect(err.retryAfterSeconds).toBeUndefined();
    });
  });

  it('slows down on 429 Throttling.AllocationQuota past the TPM', async () => {
    await patched({ rateLimits: { 'tongyi-embedding-vision-plus': { rpm: null, tpm: 5 } } }, async () => {
      await expectApiError(client.embed(request('tongyi-embedding-vision-plus', [words(20)])), {
        status: 429,
        code: 'Throttling.AllocationQuota',
        decision: 'rate-limited',
        requestId: true,
      });
    });
  });

  it('slows down on an injected 429 Throttling.BurstRate', async () => {
    await patched({ faults: { ...QUIET_FAULTS, burst429Rate: 1, burst429Length: 1 } }, async () => {
      await expectApiError(client.embed(hello()), {
        status: 429,
        code: 'Throttling.BurstRate',
        decision: 'rate-limited',
        requestId: true,
      });
    });
  });

  it('retries an injected 500 InternalError and 503 ModelUnavailable', async () => {
    await patched({ faults: { ...QUIET_FAULTS, error500Rate: 1 } }, async () => {
      await expectApiError(client.embed(hello()), {
        status: 500,
        code: 'InternalError',
        decision: 'retryable',
        requestId: true,
      });
    });
    await patched({ faults: { ...QUIET_FAULTS, error503Rate: 1 } }, async () => {
      await expectApiError(client.embed(hello()), {
        status: 503,
        code: 'ModelUnavailable',
        decision: 'retryable',
        requestId: true,
        message: /^Model is unavailable/,
      });
    });
  });

  it('retries a 500 InternalError that one element causes every time (the caller isolates it after repeats)', async () => {
    for (let i = 0; i < 2; i++) {
      await expectApiError(client.embed(request('qwen3-vl-embedding', ['fine', `poison ${INTERNAL_ERROR_MARKER}`])), {
        status: 500,
        code: 'InternalError',
        decision: 'retryable',
        requestId: true,
      });
    }
  });

  it('gives up on a hung request after timeoutMs: code Timeout, retryable', async () => {
    const impatient = new DashScopeClient({ apiKey: KEY, baseUrl: sim.url, timeoutMs: 300 });
    await patched({ faults: { ...QUIET_FAULTS, hangRate: 1, hangMs: 30_000 } }, async () => {
      await expectApiError(impatient.embed(hello()), {
        status: 0,
        code: 'Timeout',
        decision: 'retryable',
        requestId: false,
      });
      expect(sim.stats().faults.hang).toBe(1);
    });
  });

  it('retries a dropped connection: code NetworkError', async () => {
    await patched({ faults: { ...QUIET_FAULTS, dropRate: 1 } }, async () => {
      await expectApiError(client.embed(hello()), {
        status: 0,
        code: 'NetworkError',
        decision: 'retryable',
        requestId: false,
      });
      expect(sim.stats().faults.drop).toBe(1);
    });
  });

  it('retries when nothing listens on the port: code NetworkError', async () => {
    const gone = await listen(() => undefined);
    await shut(gone);
    const nowhere = new DashScopeClient({ apiKey: KEY, baseUrl: gone.url });
    await expectApiError(nowhere.embed(hello()), {
      status: 0,
      code: 'NetworkError',
      decision: 'retryable',
      requestId: false,
      message: /ECONNREFUSED/,
    });
  });
});

// ---------- answers only a hand-written server gives ----------

interface Answer {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body: string;
}

interface Received {
  readonly method: string | undefined;
  readonly path: string | undefined;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

describe('the client checks what a server answers, not only its status', () => {
  let fake: Local;
  let client: DashScopeClient;
  let answer: (received: Received) => Answer = () => ({ status: 500, body: '{}' });
  const received: Received[] = [];

  beforeAll(async () => {
    fake = await listen((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const got: Received = {
          method: req.method,
          path: req.url,
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        };
        received.push(got);
        const a = answer(got);
        res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers }).end(a.body);
      });
    });
    client = new DashScopeClient({ apiKey: KEY, baseUrl: `${fake.url}/` });
  });
  afterAll(async () => {
    await shut(fake);
  });

  const DIM = 4;
  const unit = (i: number): number[] => Array.from({ length: DIM }, (_, k) => (k === i % DIM ? 1 : 0));
  const embeddingsFor = (received: Received): { index: number; embedding: number[]; type: string }[] => {
    const body = JSON.parse(received.body) as { input: { contents: unknown[] } };
    return body.input.contents.map((_, i) => ({ index: i, embedding: unit(i), type: 'text' }));
  };
  const success = (embeddings: unknown, extra: Record<string, unknown> = {}): Answer => ({
    status: 200,
    body: JSON.stringify({ output: { embeddings }, usage: { input_tokens: 7 }, request_id: 'req-fake', ...extra }),
  });
  const three: EmbedRequest = {
    model: 'qwen3-vl-embedding',
    contents: ['a', 'b', 'c'],
    parameters: { dimension: 1024 },
    dimension: DIM,
  };

  it("sends the contract's request: POST to the endpoint with a Bearer key and a JSON body", async () => {
    answer = (r) => success(embeddingsFor(r));
    received.length = 0;
    await client.embed(three);
    expect(received).toHaveLength(1);
    const [got] = received;
    expect(got?.method).toBe('POST');
    expect(got?.path).toBe(EMBEDDING_PATH);
    expect(got?.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(got?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(got?.body ?? '')).toEqual({
      model: 'qwen3-vl-embedding',
      input: { contents: ['a', 'b', 'c'] },
      parameters: { dimension: 1024 },
    });
  });

  it('puts embeddings answered out of order back in input order by their index', async () => {
    answer = (r) => success([...embeddingsFor(r)].reverse());
    const result = await client.embed(three);
    expect(result.vectors).toEqual([unit(0), unit(1), unit(2)]);
    expect(result.usage).toEqual({ textTokens: 7, imageTokens: 0, totalTokens: 7 });
    expect(result.requestId).toBe('req-fake');
  });

  const malformed: { what: string; answer: (r: Received) => Answer }[] = [
    { what: 'one embedding fewer than inputs', answer: (r) => success(embeddingsFor(r).slice(1)) },
    {
      what: 'one embedding more than inputs',
      answer: (r) => success([...embeddingsFor(r), { index: 3, embedding: unit(3), type: 'text' }]),
    },
    {
      what: 'a vector of the wrong dimension',
      answer: (r) => success(embeddingsFor(r).map((e, i) => (i === 1 ? { ...e, embedding: [...e.embedding, 0] } : e))),
    },
    {
      what: 'an index out of range',
      answer: (r) => success(embeddingsFor(r).map((e, i) => (i === 2 ? { ...e, index: 3 } : e))),
    },
    {
      what: 'a repeated index',
      answer: (r) => success(embeddingsFor(r).map((e, i) => (i === 2 ? { ...e, index: 0 } : e))),
    },
    {
      what: 'a component that is not a number',
      answer: (r) => success(embeddingsFor(r).map((e, i) => (i === 0 ? { ...e, embedding: [1, null, 0, 0] } : e))),
    },
    {
      what: 'an entry that is not an object',
      answer: (r) => success(embeddingsFor(r).map((e, i) => (i === 1 ? null : e))),
    },
  ];

  // computed and billed: sent again, it would be paid again (the run fails its inputs instead)
  it.each(malformed)(
    'refuses a 200 with $what as a bad-response that is not retried, naming its request',
    async ({ answer: give }) => {
      answer = give;
      await expectApiError(client.embed(three), {
        status: 200,
        code: 'bad-response',
        decision: 'bad-response',
        requestId: true,
      });
    },
  );

  const notAnAnswer: { what: string; answer: (r: Received) => Answer }[] = [
    {
      what: 'no output.embeddings',
      answer: () => ({ status: 200, body: JSON.stringify({ output: {}, request_id: 'req-fake' }) }),
    },
    {
      what: 'a body that is not JSON',
      answer: () => ({ status: 200, headers: { 'content-type': 'text/html' }, body: '<html>OK</html>' }),
    },
  ];

  // no embedding answer at all (a gateway's page, a cut body): nothing was computed
  it.each(notAnAnswer)('refuses a 200 with $what as a retryable BadResponse', async ({ answer: give }) => {
    answer = give;
    await expectApiError(client.embed(three), {
      status: 0,
      code: 'BadResponse',
      decision: 'retryable',
      requestId: false,
    });
  });

  it('retries a gateway error page that is not JSON, naming the status as its code', async () => {
    answer = () => ({ status: 502, headers: { 'content-type': 'text/html' }, body: '<html>502 Bad Gateway</html>' });
    const err = await expectApiError(client.embed(three), {
      status: 502,
      code: 'HTTP502',
      decision: 'retryable',
      requestId: false,
    });
    expect(err.providerMessage).toContain('502 Bad Gateway');
  });

  it('honours a Retry-After header where a 429 has one', async () => {
    answer = () => ({
      status: 429,
      headers: { 'retry-after': '7' },
      body: JSON.stringify({ code: 'Throttling', message: 'slow down', request_id: 'req-429' }),
    });
    const err = await expectApiError(client.embed(three), {
      status: 429,
      code: 'Throttling',
      decision: 'rate-limited',
      requestId: true,
    });
    expect(err.retryAfterSeconds).toBe(7);
    expect(err.requestId).toBe('req-429');
  });

  it('keeps the key out of the error when a server echoes it back in its message', async () => {
    answer = (r) => ({
      status: 401,
      body: JSON.stringify({
        code: 'InvalidApiKey',
        message: `Invalid API-key provided: ${r.headers.authorization ?? ''}`,
        request_id: 'req-401',
      }),
    });
    await expectApiError(client.embed(three), {
      status: 401,
      code: 'InvalidApiKey',
      decision: 'fatal',
      requestId: true,
    });
    answer = (r) => ({
      status: 403,
      headers: { 'content-type': 'text/plain' },
      body: `denied for ${r.headers.authorization ?? ''}`,
    });
    await expectApiError(client.embed(three), { status: 403, code: 'HTTP403', decision: 'fatal', requestId: false });
  });
});

// ---------- the contract's error table, code by code ----------

describe("classifyApiError follows the contract's error table", () => {
  const table: [number, string, RetryDecision][] = [
    [400, 'InvalidParameter', 'input'],
    [400, 'InternalError.Algo.InvalidParameter', 'redownload'],
    [400, 'DataInspectionFailed', 'input'],
    [400, 'BadRequest.TooLarge', 'split'],
    [413, 'BadRequest.TooLarge', 'split'],
    [413, 'HTTP413', 'split'],
    [400, 'Arrearage', 'fatal'],
    [401, 'InvalidApiKey', 'fatal'],
    [403, 'AccessDenied', 'fatal'],
    [403, 'AccessDenied.Unpurchased', 'fatal'],
    [403, 'AllocationQuota.FreeTierOnly', 'fatal'],
    [404, 'ModelNotFound', 'fatal'],
    [408, 'RequestTimeOut', 'retryable'],
    [429, 'Throttling', 'rate-limited'],
    [429, 'Throttling.RateQuota', 'rate-limited'],
    [429, 'Throttling.AllocationQuota', 'rate-limited'],
    [429, 'Throttling.BurstRate', 'rate-limited'],
    [500, 'InternalError', 'retryable'],
    [500, 'InternalError.Algo', 'retryable'],
    [503, 'ModelUnavailable', 'retryable'],
    [502, 'HTTP502', 'retryable'],
  ];

  it.each(table)('decides that %i %s is %s', (status, code, decision) => {
    expect(classifyApiError(status, code)).toBe(decision);
    expect(new EmbeddingApiError({ status, code, message: 'm', requestId: 'r' }).decision).toBe(decision);
  });
});

// ---------- 4. a planned batch breaks no limit ----------

describe('requests the planner makes break no limit of the simulator', () => {
  let sim: Simulator;
  let client: DashScopeClient;

  beforeAll(async () => {
    sim = await startSimulator({ apiKey: KEY, rateLimits: 'off', allowPrivateUrls: true });
    client = new DashScopeClient({ apiKey: KEY, baseUrl: sim.url });
  });
  afterAll(async () => {
    await sim.close();
  });

  /** A seeded mixed batch: texts of many lengths (one over the model's text limit), inline and URL images, a video. */
  function batch(spec: ModelSpec, seed: number): PreparedInput[] {
    const rnd = mulberry32(seed);
    const between = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
    const inputs: PreparedInput[] = [];
    for (let i = 0; i < 40; i++) inputs.push(text(`text-${i}`, words(between(1, 450), seed * 1000 + i)));
    inputs.push(text('long', words(spec.textTokenLimit + 2_500, seed)));
    for (let i = 0; i < 8; i++) {
      const bytes =
        i % 2 === 0 ? png(between(10, 300), between(10, 300), i) : jpeg(between(10, 1200), between(10, 900));
      const path = `/batch-${seed}-${i}.${i % 2 === 0 ? 'png' : 'jpg'}`;
      FILES.set(path, bytes);
      inputs.push(i % 3 === 0 ? imageAt(`image-${i}`, bytes, path) : image(`image-${i}`, bytes));
    }
    inputs.push(video('video', CLIP, '/clip.mp4'));
    if (spec.fused) {
      inputs.push({
        kind: 'fused',
        source: 'fused',
        text: { text: 'a fused caption', tokens: qwenTokens.count('a fused caption') },
        image: imageOf(PNG_2),
      });
    }
    if (spec.multiImagesMax > 0)
      inputs.push({ kind: 'multi_images', source: 'group', images: [imageOf(PNG), imageOf(JPEG), imageOf(PNG_2)] });
    return inputs;
  }

  it.each(['qwen3-vl-embedding', 'tongyi-embedding-vision-plus'])(
    'sends every planned request of a mixed batch for %s and none is refused',
    async (name) => {
      const spec = resolveModel(name);
      const opts: PlanOptions = { model: spec, dimension: spec.defaultDimension };
      const inputs = batch(spec, name.length);
      sim.reset();
      const out = await embedAll(client, opts, inputs);

      // the batch did exercise the limits: a chunked text, and more than one request
      expect(out.bySource.get('long')?.length).toBeGreaterThan(1);
      expect(out.bySource.get('long')?.every((c) => c.planned.textTokens <= spec.textTokenLimit)).toBe(true);
      expect(out.sent.length).toBeGreaterThan(1);
      expect(new Set(out.bySource.keys())).toEqual(new Set(inputs.map((i) => i.source)));

      const stats = sim.stats();
      const planned = out.sent.flatMap((s) => s.inputs);
      expect(stats).toMatchObject({
        requests: out.sent.length,
        accepted: out.sent.length,
        inputs: planned.length,
        limitViolations: 0,
      });
      expect(stats.limitViolationsByKind).toEqual({});
      expect(stats.refusals).toEqual({});
      // the planner's token counts are the server's
      expect(stats.textTokens).toBe(planned.reduce((s, p) => s + p.textTokens, 0));
      expect(usageSum(out, 'textTokens')).toBe(stats.textTokens);
    },
  );
});
