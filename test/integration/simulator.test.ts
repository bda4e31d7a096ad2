import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { EMBEDDING_PATH } from '../../src/api.js';
import type { ApiErrorBody, ApiSuccessBody } from '../../src/api.js';
import { DATA_INSPECTION_MARKER, INTERNAL_ERROR_MARKER, startSimulator } from '../../src/simulator/index.js';
import type { Simulator, SimulatorStats } from '../../src/simulator/index.js';
import { dataUri, gif, jpeg, mp4, png } from '../support/media-fixtures.js';
import { PAGE_TEMPLATE_TOKENS, alphaWords, statedTokens } from '../support/token-fixtures.js';

const KEY = 'sk-simulator-test-key';

// ---------- a local media server for URLs ----------

const PNG_64 = png(64, 48);
const FILES: Record<string, Buffer> = {
  '/photo.png': PNG_64,
  '/dup.png': png(32, 32, 9),
  '/photo.jpg': jpeg(640, 480),
  '/anim.gif': gif(20, 20),
  '/notes.txt': Buffer.from('just some text, not an image'),
  '/clip.mp4': mp4(12),
  '/bare.mp4': mp4(undefined, 3000),
  '/big.mp4': mp4(3, 5000),
  // trailing bytes after IEND: still a PNG to a sniffer, but over a 2,000-byte limit
  '/big.png': Buffer.concat([png(40, 40, 3), Buffer.alloc(3_000, 1)]),
};

let media: Server;
let mediaUrl = '';
const hits = new Map<string, number>();

async function startMedia(): Promise<void> {
  media = createServer((req, res) => {
    const path = req.url ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (path === '/slow.png') return; // never answers: the simulator's download times out
    if (path === '/chunked.png') {
      // two writes and no length: Node sends it chunked, with no Content-Length
      res.writeHead(200, { 'content-type': 'image/png' });
      res.write(PNG_64.subarray(0, 20));
      res.end(PNG_64.subarray(20));
      return;
    }
    if (path === '/to-loopback.png') {
      res.writeHead(302, { location: `${mediaUrl}/photo.png` }).end();
      return;
    }
    const body = FILES[path];
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => media.listen(0, '127.0.0.1', resolve));
  mediaUrl = `http://127.0.0.1:${(media.address() as AddressInfo).port}`;
}

// ---------- HTTP helpers ----------

interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly json: unknown;
}

interface CallOptions {
  readonly key?: string | null;
  readonly contentType?: string;
  readonly raw?: string;
}

async function call(sim: Simulator, body: unknown, opts: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { 'content-type': opts.contentType ?? 'application/json' };
  const key = opts.key === undefined ? KEY : opts.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  const res = await fetch(`${sim.url}${EMBEDDING_PATH}`, {
    method: 'POST',
    headers,
    body: opts.raw ?? JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

function success(r: Reply): ApiSuccessBody {
  expect({ status: r.status, json: r.json }).toMatchObject({ status: 200 });
  return r.json as ApiSuccessBody;
}

/** Asserts the status and code (the message shows in the diff when they differ). */
function failure(r: Reply, status: number, code: string): ApiErrorBody {
  expect({ status: r.status, json: r.json }).toMatchObject({ status, json: { code } });
  const body = r.json as ApiErrorBody;
  expect(body.request_id).toMatch(/^[0-9a-f-]{36}$/);
  return body;
}

async function getStats(sim: Simulator): Promise<SimulatorStats> {
  const res = await fetch(`${sim.url}/_sim/stats`);
  expect(res.status).toBe(200);
  return (await res.json()) as SimulatorStats;
}

const norm = (v: readonly number[]): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

// ---------- the tests ----------

let sim: Simulator;
let strict: Simulator;

beforeAll(async () => {
  await startMedia();
  // the media server is on this machine: these simulators download from it as URL-mode tests do
  sim = await startSimulator({ apiKey: KEY, rateLimits: 'off', allowPrivateUrls: true });
  strict = await startSimulator({
    apiKey: KEY,
    rateLimits: 'off',
    allowPrivateUrls: true,
    maxBodyBytes: 60_000,
    maxDataUriBytes: 5_000,
    downloadTimeoutMs: 300,
    modelOverrides: { 'tongyi-embedding-vision-plus': { imageMaxBytes: 2_000, videoMaxBytes: 2_000 } },
  });
});

afterAll(async () => {
  await sim.close();
  await strict.close();
  media.closeAllConnections();
  await new Promise<void>((resolve) => media.close(() => resolve()));
});

describe('the simulator answers valid requests like the provider', () => {
  it.each([
    ['qwen3-vl-embedding', 2560, 'text'],
    ['tongyi-embedding-vision-plus', 1152, 'text'],
    ['tongyi-embedding-vision-flash', 768, 'text'],
    ['multimodal-embedding-v1', 1024, 'text'],
    ['qwen2.5-vl-embedding', 1024, 'vl'],
  ])('embeds texts with %s at its default dimension', async (model, dimension, type) => {
    const body = success(await call(sim, { model, input: { contents: ['hello world', { text: 'a second text' }] } }));
    expect(body.output.embeddings.map((e) => [e.index, e.type, e.embedding.length])).toEqual([
      [0, type, dimension],
      [1, type, dimension],
    ]);
    for (const e of body.output.embeddings) expect(norm(e.embedding)).toBeCloseTo(1, 6);
    const tokens = statedTokens('hello world') + statedTokens('a second text');
    expect(body.usage).toMatchObject({
      input_tokens: tokens,
      image_tokens: 0,
      total_tokens: tokens,
      input_tokens_details: { text_tokens: tokens, image_tokens: 0 },
    });
    expect(body.request_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('returns vectors of the requested dimension and the same vector for the same text', async () => {
    const a = success(
      await call(sim, {
        model: 'tongyi-embedding-vision-flash',
        input: { contents: ['same text'] },
        parameters: { dimension: 64, output_type: 'dense', instruct: 'Find the text' },
      }),
    );
    const b = success(
      await call(sim, {
        model: 'tongyi-embedding-vision-flash',
        input: { contents: ['same text'] },
        parameters: { dimension: 64 },
      }),
    );
    expect(a.output.embeddings[0]?.embedding).toHaveLength(64);
    expect(b.output.embeddings[0]?.embedding).toEqual(a.output.embeddings[0]?.embedding);
  });

  it('embeds inline PNG and JPEG images and counts their tokens by the pixel rule', async () => {
    const body = success(
      await call(sim, {
        model: 'tongyi-embedding-vision-plus',
        input: { contents: [{ image: dataUri('png', PNG_64) }, { image: dataUri('jpeg', jpeg(640, 480)) }] },
      }),
    );
    expect(body.output.embeddings.map((e) => e.type)).toEqual(['image', 'image']);
    // 64x48 is 3 patches of 32x32, raised to the floor of 4; 640x480 is 20 x 15 patches
    const expected = 4 + 300;
    expect(body.usage).toMatchObject({
      input_tokens: 0,
      image_tokens: expected,
      image_count: 2,
      total_tokens: expected,
    });
  });

  it('downloads an image URL and gives it the same vector as the same bytes inline', async () => {
    const byUrl = success(
      await call(sim, { model: 'qwen3-vl-embedding', input: { contents: [{ image: `${mediaUrl}/photo.png` }] } }),
    );
    const inline = success(
      await call(sim, { model: 'qwen3-vl-embedding', input: { contents: [{ image: dataUri('png', PNG_64) }] } }),
    );
    expect(byUrl.output.embeddings[0]?.type).toBe('image');
    expect(byUrl.output.embeddings[0]?.embedding).toEqual(inline.output.embeddings[0]?.embedding);
  });

  it('embeds a video URL and counts frames from its mp4 duration and fps', async () => {
    const body = success(
      await call(sim, {
        model: 'tongyi-embedding-vision-flash',
        input: { contents: [{ video: `${mediaUrl}/clip.mp4` }] },
        parameters: { fps: 0.5 },
      }),
    );
    expect(body.output.embeddings[0]?.type).toBe('video');
    // 12 s at fps 0.5: 6 frames of 256 tokens
    expect(body.usage).toMatchObject({ image_tokens: 6 * 256, duration: 12 });
  });

  it('falls back to the byte-size rule for a video without a duration', async () => {
    const body = success(
      await call(sim, { model: 'multimodal-embedding-v1', input: { contents: [{ video: `${mediaUrl}/bare.mp4` }] } }),
    );
    expect(body.usage).toMatchObject({ image_tokens: 256, duration: 1 });
  });

  it('gives one vl vector for a fused text, image and video element', async () => {
    const body = success(
      await call(sim, {
        model: 'qwen3-vl-embedding',
        input: {
          contents: [
            { text: 'a fused element', image: `${mediaUrl}/photo.jpg`, video: `${mediaUrl}/clip.mp4` },
            'a separate text',
          ],
        },
        parameters: { dimension: 1024 },
      }),
    );
    expect(body.output.embeddings.map((e) => [e.index, e.type, e.embedding.length])).toEqual([
      [0, 'vl', 1024],
      [1, 'text', 1024],
    ]);
    expect(body.usage?.image_count).toBe(1);
    expect(body.usage?.image_tokens).toBe(300 + 12 * 256);
  });

  it('treats every element of the fused-only model as vl', async () => {
    const body = success(
      await call(sim, {
        model: 'qwen2.5-vl-embedding',
        input: { contents: [{ image: dataUri('png', PNG_64) }, { text: 'caption', video: `${mediaUrl}/clip.mp4` }] },
      }),
    );
    expect(body.output.embeddings.map((e) => e.type)).toEqual(['vl', 'vl']);
  });

  it('embeds a multi_images group as one vector and downloads a repeated URL once', async () => {
    const url = `${mediaUrl}/dup.png`;
    const before = hits.get('/dup.png') ?? 0;
    const body = success(
      await call(sim, {
        model: 'tongyi-embedding-vision-plus',
        input: { contents: [{ multi_images: [url, url, dataUri('png', PNG_64)] }, { image: url }] },
      }),
    );
    expect(body.output.embeddings.map((e) => e.type)).toEqual(['multi_images', 'image']);
    expect(body.usage?.image_count).toBe(4);
    expect((hits.get('/dup.png') ?? 0) - before).toBe(1);
  });
});

describe('the simulator refuses what the provider refuses', () => {
  const qwen = (contents: unknown[], parameters?: unknown): unknown => ({
    model: 'qwen3-vl-embedding',
    input: { contents },
    ...(parameters ? { parameters } : {}),
  });

  it('refuses a wrong or missing key with 401 InvalidApiKey and never echoes the key', async () => {
    const wrong = failure(await call(sim, qwen(['x']), { key: 'sk-wrong' }), 401, 'InvalidApiKey');
    expect(wrong.message).toBe('Invalid API-key provided.');
    failure(await call(sim, qwen(['x']), { key: null }), 401, 'InvalidApiKey');
    const res = await fetch(`${sim.url}/_sim/config`);
    expect(await res.text()).not.toContain(KEY);
  });

  it('refuses an unknown model with 404 ModelNotFound', async () => {
    failure(await call(sim, { model: 'text-embedding-v9', input: { contents: ['x'] } }), 404, 'ModelNotFound');
  });

  it('refuses bodies that are not JSON or not shaped like a request', async () => {
    failure(await call(sim, qwen(['x']), { contentType: 'text/plain' }), 400, 'InvalidParameter');
    failure(await call(sim, null, { raw: '{"model": ' }), 400, 'InvalidParameter');
    failure(await call(sim, { model: 'qwen3-vl-embedding', input: { contents: [] } }), 400, 'InvalidParameter');
    failure(await call(sim, { model: 'qwen3-vl-embedding' }), 400, 'InvalidParameter');
  });

  it('refuses malformed elements: unknown keys, empty objects, blank texts, non-strings', async () => {
    expect(failure(await call(sim, qwen([{ audio: 'x' }])), 400, 'InvalidParameter').message).toContain('audio');
    failure(await call(sim, qwen([{}])), 400, 'InvalidParameter');
    failure(await call(sim, qwen(['   '])), 400, 'InvalidParameter');
    failure(await call(sim, qwen([42])), 400, 'InvalidParameter');
    failure(await call(sim, qwen([{ text: 5 }])), 400, 'InvalidParameter');
  });

  it('refuses parameters outside the documented values', async () => {
    expect(failure(await call(sim, qwen(['x'], { dimension: 100 })), 400, 'InvalidParameter').message).toContain(
      'dimension',
    );
    failure(
      await call(sim, {
        model: 'multimodal-embedding-v1',
        input: { contents: ['x'] },
        parameters: { dimension: 1024 },
      }),
      400,
      'InvalidParameter',
    );
    failure(await call(sim, qwen(['x'], { output_type: 'sparse' })), 400, 'InvalidParameter');
    failure(await call(sim, qwen(['x'], { fps: 2 })), 400, 'InvalidParameter');
    failure(await call(sim, qwen(['x'], { instruct: 5 })), 400, 'InvalidParameter');
  });

  it('refuses fused elements and multi_images where the model has none', async () => {
    expect(
      failure(
        await call(sim, {
          model: 'tongyi-embedding-vision-plus',
          input: { contents: [{ text: 'x', image: dataUri('png', PNG_64) }] },
        }),
        400,
        'InvalidParameter',
      ).message,
    ).toContain('fused');
    failure(await call(sim, qwen([{ multi_images: [dataUri('png', PNG_64)] }])), 400, 'InvalidParameter');
    failure(
      await call(sim, {
        model: 'tongyi-embedding-vision-plus',
        input: { contents: [{ multi_images: [dataUri('png', PNG_64)], text: 'x' }] },
      }),
      400,
      'InvalidParameter',
    );
  });

  it('refuses requests over the element, image and video counts, naming the limit', async () => {
    const before = await getStats(sim);
    const tooMany = failure(
      await call(sim, qwen(Array.from({ length: 21 }, (_, i) => `text ${i}`))),
      400,
      'InvalidParameter',
    );
    expect(tooMany.message).toMatch(/21 elements.*20/);
    expect(
      failure(
        await call(sim, qwen([{ image: dataUri('png', PNG_64) }, { image: dataUri('png', PNG_64) }])),
        400,
        'InvalidParameter',
      ).message,
    ).toMatch(/2 images.*1/);
    expect(
      failure(
        await call(sim, qwen([{ video: `${mediaUrl}/clip.mp4` }, { video: `${mediaUrl}/clip.mp4` }])),
        400,
        'InvalidParameter',
      ).message,
    ).toMatch(/2 videos/);
    const nine = Array.from({ length: 9 }, () => dataUri('png', PNG_64));
    expect(
      failure(
        await call(sim, { model: 'tongyi-embedding-vision-plus', input: { contents: [{ multi_images: nine }] } }),
        400,
        'InvalidParameter',
      ).message,
    ).toMatch(/9 images.*8/);
    const after = await getStats(sim);
    expect(after.limitViolations - before.limitViolations).toBe(4);
  });

  it('refuses a text over a per-text token limit and texts over a per-request token limit', async () => {
    const long = alphaWords(600);
    expect(
      failure(
        await call(sim, { model: 'multimodal-embedding-v1', input: { contents: [long] } }),
        400,
        'InvalidParameter',
      ).message,
    ).toMatch(/512 tokens/);
    const third = alphaWords(400);
    const tongyi = (contents: string[]): unknown => ({ model: 'tongyi-embedding-vision-flash', input: { contents } });
    success(await call(sim, tongyi([third, third])));
    expect(failure(await call(sim, tongyi([third, third, third])), 400, 'InvalidParameter').message).toMatch(
      /1024 tokens per request/,
    );
  });

  it('refuses media that are not what they claim or break the shape rule', async () => {
    const tongyi = (content: unknown): unknown => ({
      model: 'tongyi-embedding-vision-plus',
      input: { contents: [content] },
    });
    expect(
      failure(await call(sim, tongyi({ image: `${mediaUrl}/notes.txt` })), 400, 'InvalidParameter').message,
    ).toContain('contents[0].image');
    expect(
      failure(await call(sim, tongyi({ image: `${mediaUrl}/anim.gif` })), 400, 'InvalidParameter').message,
    ).toContain('gif');
    expect(
      failure(await call(sim, tongyi({ image: dataUri('png', png(5, 5)) })), 400, 'InvalidParameter').message,
    ).toContain('10 px');
    expect(
      failure(await call(sim, tongyi({ image: dataUri('png', png(2010, 10)) })), 400, 'InvalidParameter').message,
    ).toContain('200:1');
    failure(await call(sim, tongyi({ image: 'data:text/plain;base64,aGVsbG8=' })), 400, 'InvalidParameter');
    failure(await call(sim, tongyi({ image: 'data:image/png;base64,@@@' })), 400, 'InvalidParameter');
    expect(failure(await call(sim, tongyi({ image: 'not a url' })), 400, 'InvalidParameter').message).toBe(
      'url error, please check url!',
    );
    failure(
      await call(sim, tongyi({ video: `data:video/mp4;base64,${mp4(1).toString('base64')}` })),
      400,
      'InvalidParameter',
    );
    failure(await call(sim, tongyi({ video: `${mediaUrl}/photo.png` })), 400, 'InvalidParameter');
  });

  it('answers a failed download with 400 InternalError.Algo.InvalidParameter', async () => {
    const tongyi = (content: unknown): unknown => ({
      model: 'tongyi-embedding-vision-plus',
      input: { contents: ['fine', content] },
    });
    const missing = failure(
      await call(sim, tongyi({ image: `${mediaUrl}/missing.png` })),
      400,
      'InternalError.Algo.InvalidParameter',
    );
    expect(missing.message).toBe('Failed to download multimodal content');
    failure(
      await call(sim, tongyi({ video: 'http://127.0.0.1:1/nothing.mp4' })),
      400,
      'InternalError.Algo.InvalidParameter',
    );
    failure(await call(strict, tongyi({ image: `${mediaUrl}/slow.png` })), 400, 'InternalError.Algo.InvalidParameter');
  });

  it('refuses images, videos, data URIs and bodies over their byte limits', async () => {
    const tongyi = (content: unknown): unknown => ({
      model: 'tongyi-embedding-vision-plus',
      input: { contents: [content] },
    });
    const before = await getStats(strict);
    expect(
      failure(await call(strict, tongyi({ image: `${mediaUrl}/big.png` })), 400, 'InvalidParameter').message,
    ).toMatch(/2000 bytes/);
    expect(
      failure(await call(strict, tongyi({ video: `${mediaUrl}/big.mp4` })), 400, 'InvalidParameter').message,
    ).toMatch(/2000 bytes/);
    expect(
      failure(await call(strict, tongyi({ image: dataUri('png', Buffer.alloc(6_000, 1)) })), 400, 'InvalidParameter')
        .message,
    ).toMatch(/5000 bytes/);
    const body = failure(
      await call(strict, { model: 'qwen3-vl-embedding', input: { contents: ['x'.repeat(70_000)] } }),
      413,
      'BadRequest.TooLarge',
    );
    expect(body.message).toContain('60000');
    const after = await getStats(strict);
    expect(after.limitViolations - before.limitViolations).toBe(4);
    expect(after.limitViolationsByKind).toMatchObject({
      'image-bytes': 1,
      'video-bytes': 1,
      'data-uri-bytes': 1,
      'body-bytes': 1,
    });
  });

  it('answers the test markers with DataInspectionFailed and a repeatable InternalError', async () => {
    const inspected = failure(
      await call(sim, qwen(['fine', `bad ${DATA_INSPECTION_MARKER} text`])),
      400,
      'DataInspectionFailed',
    );
    expect(inspected.message).toBeTruthy();
    failure(await call(sim, qwen([`poison ${INTERNAL_ERROR_MARKER}`])), 500, 'InternalError');
    failure(await call(sim, qwen([`poison ${INTERNAL_ERROR_MARKER}`])), 500, 'InternalError');
  });
});

describe('the simulator is as strict as the provider where the provider is stricter', () => {
  let provider: Simulator;
  beforeAll(async () => {
    // as the provider: no allowPrivateUrls
    provider = await startSimulator({ apiKey: KEY, rateLimits: 'off' });
  });
  afterAll(async () => {
    await provider.close();
  });
  const v1 = (contents: unknown[]): unknown => ({ model: 'multimodal-embedding-v1', input: { contents } });
  const flash = (contents: unknown[]): unknown => ({ model: 'tongyi-embedding-vision-flash', input: { contents } });

  it(`charges ${PAGE_TEMPLATE_TOKENS} template tokens a text: 507 tokens pass multimodal-embedding-v1's 512, 508 do not`, async () => {
    expect(success(await call(provider, v1([alphaWords(512 - PAGE_TEMPLATE_TOKENS)]))).usage?.input_tokens).toBe(507);
    const over = failure(
      await call(provider, v1([alphaWords(512 - PAGE_TEMPLATE_TOKENS + 1)])),
      400,
      'InvalidParameter',
    );
    expect(over.message).toBe(
      "contents[0]: text of 508 tokens (513 with the template) is over multimodal-embedding-v1's limit of 512 tokens per text.",
    );
  });

  it('charges the template once a text under a per-request limit: 507 + 507 tokens pass 1,024, 507 + 508 do not', async () => {
    success(await call(provider, flash([alphaWords(507), alphaWords(507)])));
    const over = failure(await call(provider, flash([alphaWords(507), alphaWords(508)])), 400, 'InvalidParameter');
    expect(over.message).toBe(
      "Texts (with their template tokens) of this request total 1025 tokens, over tongyi-embedding-vision-flash's limit of 1024 tokens per request.",
    );
  });

  it('refuses URLs of loopback addresses, local names and private networks without downloading them', async () => {
    const before = hits.get('/photo.png') ?? 0;
    const port = new URL(mediaUrl).port;
    for (const url of [
      `${mediaUrl}/photo.png`,
      `http://localhost:${port}/photo.png`,
      'http://10.20.30.40/photo.png',
      'http://[::1]:1/photo.png',
      'http://192.168.1.1/x.png',
    ]) {
      const refused = failure(
        await call(provider, flash([{ image: url }])),
        400,
        'InternalError.Algo.InvalidParameter',
      );
      expect(refused.message).toBe('Failed to download multimodal content');
    }
    failure(
      await call(provider, flash([{ video: `${mediaUrl}/clip.mp4` }])),
      400,
      'InternalError.Algo.InvalidParameter',
    );
    expect(hits.get('/photo.png') ?? 0).toBe(before);
    // the same URL through a simulator started with the flag URL-mode tests use
    expect(success(await call(sim, flash([{ image: `${mediaUrl}/photo.png` }]))).output.embeddings).toHaveLength(1);
    expect(hits.get('/photo.png')).toBe(before + 1);
  });

  it('refuses a media URL answered without Content-Length, as the provider does', async () => {
    const refused = failure(await call(sim, flash([{ image: `${mediaUrl}/chunked.png` }])), 400, 'InternalError.Algo');
    expect(refused.message).toBe('Missing Content-Length of multimodal url');
    expect(hits.get('/chunked.png')).toBe(1);
  });

  it('follows a redirect only to where it may download from', async () => {
    success(await call(sim, flash([{ image: `${mediaUrl}/to-loopback.png` }])));
    failure(
      await call(provider, flash([{ image: `${mediaUrl}/to-loopback.png` }])),
      400,
      'InternalError.Algo.InvalidParameter',
    );
  });

  it('refuses a data URI whose declared format is not its bytes, and takes the aliases of the real one', async () => {
    const jpg = jpeg(40, 30);
    const wrong = failure(await call(provider, flash([{ image: dataUri('png', jpg) }])), 400, 'InvalidParameter');
    expect(wrong.message).toBe('contents[0].image: the data URI declares image/png but its bytes are a jpeg image.');
    const unknown = failure(
      await call(provider, flash([{ image: `data:image/photo;base64,${jpg.toString('base64')}` }])),
      400,
      'InvalidParameter',
    );
    expect(unknown.message).toBe('contents[0].image: the data URI declares image/photo, which is not an image format.');
    for (const declared of ['jpeg', 'jpg', 'JPEG']) {
      success(await call(provider, flash([{ image: `data:image/${declared};base64,${jpg.toString('base64')}` }])));
    }
  });
});

describe('the simulator enforces rate limits per model', () => {
  let limited: Simulator;
  beforeAll(async () => {
    limited = await startSimulator({
      apiKey: KEY,
      rateLimits: {
        'qwen3-vl-embedding': { rpm: 120, tpm: null },
        'multimodal-embedding-v1': { rpm: 2, tpm: null },
        'tongyi-embedding-vision-plus': { rpm: null, tpm: 50 },
      },
    });
  });
  afterAll(async () => {
    await limited.close();
  });

  it('refuses requests over the per-second share of RPM with Throttling.RateQuota', async () => {
    const replies = await Promise.all(
      [1, 2, 3].map((i) => call(limited, { model: 'qwen3-vl-embedding', input: { contents: [`burst ${i}`] } })),
    );
    expect(replies.map((r) => r.status).sort()).toEqual([200, 200, 429]);
    const refused = replies.find((r) => r.status === 429);
    expect(refused && failure(refused, 429, 'Throttling.RateQuota').message).toBe(
      'Requests rate limit exceeded, please try again later.',
    );
  });

  it('refuses the request over RPM within a minute, without a Retry-After header', async () => {
    const v1 = { model: 'multimodal-embedding-v1', input: { contents: ['per minute'] } };
    success(await call(limited, v1));
    await sleep(1_100);
    success(await call(limited, v1));
    await sleep(1_100);
    const third = await call(limited, v1);
    failure(third, 429, 'Throttling.RateQuota');
    expect(third.headers.get('retry-after')).toBeNull();
  });

  it('refuses a request over TPM with Throttling.AllocationQuota, and refused requests use no quota', async () => {
    const thirty = alphaWords(30);
    const fifteen = alphaWords(15);
    const plus = (text: string): unknown => ({ model: 'tongyi-embedding-vision-plus', input: { contents: [text] } });
    success(await call(limited, plus(thirty)));
    const over = failure(await call(limited, plus(thirty)), 429, 'Throttling.AllocationQuota');
    expect(over.message).toBe('Allocated quota exceeded, please increase your quota limit.');
    success(await call(limited, plus(fifteen)));
    const stats = await getStats(limited);
    expect(stats.models['tongyi-embedding-vision-plus']).toMatchObject({
      accepted: 2,
      textTokens: 45,
      refusals: { 'Throttling.AllocationQuota': 1 },
    });
  });

  it('forgets the windows on reset and takes new limits from POST /_sim/config', async () => {
    const plus = { model: 'tongyi-embedding-vision-plus', input: { contents: [alphaWords(40)] } };
    const reset = await fetch(`${limited.url}/_sim/reset`, { method: 'POST' });
    expect(reset.status).toBe(200);
    success(await call(limited, plus));
    failure(await call(limited, plus), 429, 'Throttling.AllocationQuota');
    const res = await fetch(`${limited.url}/_sim/config`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ rateLimits: 'off' }),
    });
    expect(res.status).toBe(200);
    success(await call(limited, plus));
    const bad = await fetch(`${limited.url}/_sim/config`, {
      method: 'POST',
      body: JSON.stringify({ faults: { error500Rate: 2 } }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as ApiErrorBody).message).toContain('error500Rate');
  });
});

describe('the simulator injects seeded faults', () => {
  let faulty: Simulator;
  const text = { model: 'qwen3-vl-embedding', input: { contents: ['fault test'] } };
  const quiet = { error500Rate: 0, error503Rate: 0, burst429Rate: 0, hangRate: 0, dropRate: 0 };
  beforeAll(async () => {
    faulty = await startSimulator({ apiKey: KEY, rateLimits: 'off', faults: { seed: 42 } });
  });
  afterAll(async () => {
    await faulty.close();
  });

  it('answers 500 InternalError and 503 ModelUnavailable at rate 1', async () => {
    faulty.configure({ faults: { ...quiet, error500Rate: 1 } });
    failure(await call(faulty, text), 500, 'InternalError');
    faulty.configure({ faults: { ...quiet, error503Rate: 1 } });
    expect(failure(await call(faulty, text), 503, 'ModelUnavailable').message).toBe(
      'Model is unavailable, please try again later.',
    );
    expect(faulty.stats().faults).toMatchObject({ error500: 1, error503: 1 });
  });

  it('still authenticates before injecting a fault', async () => {
    faulty.configure({ faults: { ...quiet, error500Rate: 1 } });
    failure(await call(faulty, text, { key: 'sk-other' }), 401, 'InvalidApiKey');
  });

  it('keeps a 429 burst going for its length', async () => {
    faulty.configure({ faults: { ...quiet, burst429Rate: 1, burst429Length: 3 } });
    failure(await call(faulty, text), 429, 'Throttling.BurstRate');
    faulty.configure({ faults: { burst429Rate: 0 } });
    failure(await call(faulty, text), 429, 'Throttling.BurstRate');
    failure(await call(faulty, text), 429, 'Throttling.BurstRate');
    success(await call(faulty, text));
  });

  it('drops the connection without an answer', async () => {
    faulty.configure({ faults: { ...quiet, dropRate: 1 } });
    await expect(call(faulty, text)).rejects.toThrow();
    expect(faulty.stats().faults.drop).toBe(1);
  });

  it('holds a hung request for hangMs, then drops it', async () => {
    faulty.configure({ faults: { ...quiet, hangRate: 1, hangMs: 150 } });
    await expect(call(faulty, text)).rejects.toThrow();
    expect(faulty.stats().faults.hang).toBe(1);
  });

  it('repeats the same faults for the same seed', async () => {
    const statuses = async (): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < 20; i++) out.push((await call(faulty, text)).status);
      return out;
    };
    faulty.configure({ faults: { ...quiet, seed: 7, error500Rate: 0.3, error503Rate: 0.3 } });
    faulty.reset();
    const first = await statuses();
    faulty.reset();
    const second = await statuses();
    expect(second).toEqual(first);
    expect(new Set(first)).toEqual(new Set([200, 500, 503]));
  });

  it('holds answers for the configured latency', async () => {
    faulty.configure({ faults: quiet, latency: { fixedMs: 80 } });
    const started = performance.now();
    success(await call(faulty, text));
    expect(performance.now() - started).toBeGreaterThanOrEqual(70);
    faulty.configure({ latency: { fixedMs: 0 } });
  });
});

describe('the simulator reports what it saw', () => {
  it('counts requests, inputs, tokens, refusals and peak concurrency, and zeroes them on reset', async () => {
    const counted = await startSimulator({ apiKey: KEY, rateLimits: 'off', latency: { fixedMs: 100 } });
    try {
      await Promise.all(
        [1, 2, 3].map((i) =>
          call(counted, {
            model: 'tongyi-embedding-vision-plus',
            input: { contents: [`text ${i}`, { image: dataUri('png', PNG_64) }] },
          }),
        ),
      );
      failure(
        await call(counted, { model: 'tongyi-embedding-vision-plus', input: { contents: ['x'] } }, { key: 'sk-no' }),
        401,
        'InvalidApiKey',
      );
      failure(
        await call(counted, {
          model: 'multimodal-embedding-v1',
          input: { contents: Array.from({ length: 21 }, () => 'x') },
        }),
        400,
        'InvalidParameter',
      );
      const stats = await getStats(counted);
      expect(stats).toMatchObject({
        requests: 5,
        accepted: 3,
        inputs: 6,
        images: 3,
        imageTokens: 3 * 4,
        refusals: { InvalidApiKey: 1, InvalidParameter: 1 },
        limitViolations: 1,
        limitViolationsByKind: { elements: 1 },
        inFlight: 0,
      });
      expect(stats.textTokens).toBe(3 + 3 + 3);
      expect(stats.peakConcurrency).toBeGreaterThanOrEqual(2);
      expect(stats.models['tongyi-embedding-vision-plus']).toMatchObject({
        requests: 3,
        accepted: 3,
        maxRequestsInAnyMinute: 3,
      });
      expect(stats.models['multimodal-embedding-v1']).toMatchObject({ requests: 1, limitViolations: 1 });
      counted.reset();
      expect(counted.stats()).toMatchObject({ requests: 0, accepted: 0, limitViolations: 0, refusals: {}, models: {} });
    } finally {
      await counted.close();
    }
  });
});
