/**
 * The provider's own Python SDK against the simulator (issue 12, part 3).
 *
 * test/python/sdk_examples.py runs the Python examples of the provider's API page
 * (../../../shared/reference/multimodal-embedding-api.txt: text, image by URL, local image
 * as a base64 data URI, video by URL, fused text+image+video with `dimension` and `fps`)
 * through `dashscope.MultiModalEmbedding.call` (dashscope pinned in
 * test/python/requirements.txt, installed by `npm run setup`), plus a wrong key, two
 * refused inputs and a 429. This test asserts what the SDK handed its caller, then compares
 * the requests the simulator captured (its request log, key redacted) from the SDK with
 * those the project's own client sends for the same inputs, built the pipeline's way
 * (prepare -> planRequests -> requestBody -> DashScopeClient). Media are MinIO objects
 * behind presigned URLs, as the pipeline sends videos.
 *
 * Differences between the two clients' requests, and why each is acceptable by the API
 * page (the README's simulator section sums them up):
 * - a text element: the page's SDK examples send `{"text": T}`, the project sends the bare
 *   string `T`; the page allows both ("You can also pass the string directly"), and the
 *   SDK passes a bare string through unchanged (`text_bare_string`);
 * - `parameters.dimension`: the project always sends it for models that take it (the
 *   collection's dimension, even when it is the default); the page's SDK examples leave it
 *   out (the model's default);
 * - headers: the SDK adds `charset=utf-8` to Content-Type, `Accept: application/json`,
 *   its own user agent and `x-dashscope-sdk-client` / `x-dashscope-sdk-session-id`
 *   (statistics, not in the page's header list); the project sends the page's two headers
 *   and Node's defaults.
 * The test fails on any difference not in this list. With SDK_TEST_DUMP=FILE it writes
 * the script's output and both request logs to FILE, to look at.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { S3Client } from '@aws-sdk/client-s3';
import { EMBEDDING_PATH } from '../../src/api.js';
import type { ApiContent } from '../../src/api.js';
import { DashScopeClient } from '../../src/embedder.js';
import type { EmbedResult } from '../../src/embedder.js';
import { imageTokens } from '../../src/media.js';
import { MODEL_NAMES, resolveModel } from '../../src/models.js';
import { planRequests } from '../../src/planner.js';
import { requestBody } from '../../src/request-body.js';
import type { PlanOptions } from '../../src/plan-limits.js';
import type { PreparedImage, PreparedInput, PreparedVideo } from '../../src/prepared-input.js';
import { prepareImage, prepareImageBytes, prepareText, prepareVideo } from '../../src/prepare.js';
import type { Prepared } from '../../src/prepare.js';
import { createS3Store } from '../../src/s3-store.js';
import type { ObjectStore } from '../../src/object-store.js';
import { DEFAULT_VIDEO_TOKEN_RULE, startSimulator, videoTokens } from '../../src/simulator/index.js';
import type { CapturedRequest, RateLimit, Simulator } from '../../src/simulator/index.js';
import { countTokens, qwenTokens } from '../../src/tokens.js';
import { mp4, png } from '../support/media-fixtures.js';
import { startMinio } from '../support/minio.js';
import { createBucket, putObject, testS3Client } from '../support/s3.js';
import type { S3ForTest } from '../support/s3.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PYTHON = join(ROOT, 'test/python/.venv/bin/python');
const SCRIPT = join(ROOT, 'test/python/sdk_examples.py');
const SETUP_HINT = 'run `npm run setup` (scripts/setup.sh creates test/python/.venv with the pinned dashscope SDK)';

/** Distinctive, so a leak into the request log is found by a substring search. */
const KEY = 'sk-sdk-test-SECRET-0123456789abcdef';
const WRONG_KEY = 'sk-sdk-test-WRONG-fedcba9876543210';
/** The one model with a quota (1 request a minute), for the 429 case. */
const THROTTLED = 'tongyi-embedding-vision-flash';

const TEXT = 'General multimodal representation model example';
const FUSED_TEXT = 'This is a test text for generating a multimodal fused embedding.';
const BUCKET = 'sdk-media';
/** The page's image and video URLs, as object keys (the `+` is part of the page's key). */
const IMAGE_KEY = 'images/256_1.png';
const VIDEO_KEY = 'file-manage-files/zh-CN/20250107/lbcemt/new+video.mp4';
const MISSING_KEY = 'images/missing.png';
const IMAGE = png(256, 256);
const LOCAL_IMAGE = png(120, 90, 77);
const VIDEO_SECONDS = 12;
const VIDEO = mp4(VIDEO_SECONDS);

// ---------- what the script prints ----------

interface SdkEmbedding {
  readonly index: number;
  readonly type: string;
  readonly length: number;
  readonly numbers: boolean;
  readonly head: number[];
}

interface SdkCase {
  readonly raised?: string;
  readonly python_type?: string;
  readonly ok?: boolean;
  readonly status_code?: number;
  readonly request_id?: string;
  readonly code?: string | null;
  readonly message?: string;
  readonly output?: { embeddings: SdkEmbedding[] } | null;
  readonly usage?: Record<string, unknown> | null;
}

interface SdkRun {
  readonly dashscope_version: string;
  readonly cases: Record<string, SdkCase>;
}

function runScript(env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [SCRIPT], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// ---------- state ----------

let s3: S3ForTest | undefined;
let s3client: S3Client | undefined;
let sim: Simulator | undefined;
let tmp: string | undefined;
let urls: { image: string; video: string; missing: string } = { image: '', video: '', missing: '' };
let sdk: SdkRun;
/** The simulator's log of the SDK's requests, and of the project client's. */
let sdkLog: CapturedRequest[] = [];
let ourLog: CapturedRequest[] = [];
/** The project client's results by case. */
const ours = new Map<string, { result: EmbedResult; contents: readonly ApiContent[] }>();

function ok<T>(prepared: Prepared<T>): T {
  if ('failure' in prepared)
    throw new Error(`test input not prepared: ${prepared.failure.source}: ${prepared.failure.reason}`);
  return prepared.ok;
}

function preparedImage(bytes: Buffer, url?: string): PreparedImage {
  return ok(
    prepareImageBytes('image', bytes, url === undefined ? { kind: 'inline', data: bytes } : { kind: 'url', url }),
  );
}

function preparedVideo(url: string): PreparedVideo {
  const input = ok(prepareVideo(VIDEO_KEY, VIDEO.length, 'mp4', url, VIDEO.subarray(0, 64)));
  if (input.kind !== 'video') throw new Error('prepareVideo gave no video');
  return input.video;
}

/** The same inputs as each SDK case, as the pipeline prepares them (URL mode for the image URL). */
function ourInputs(): Record<string, { model: string; input: PreparedInput; fps?: number; dimension?: number }> {
  return {
    text: { model: 'tongyi-embedding-vision-plus', input: ok(prepareText('text', Buffer.from(TEXT), qwenTokens)) },
    text_bare_string: {
      model: 'tongyi-embedding-vision-plus',
      input: ok(prepareText('text', Buffer.from(TEXT), qwenTokens)),
    },
    image_url: {
      model: 'tongyi-embedding-vision-plus',
      input: ok(prepareImage(IMAGE_KEY, IMAGE, { kind: 'url', url: urls.image })),
    },
    local_image_base64: { model: 'tongyi-embedding-vision-plus', input: ok(prepareImage('local.png', LOCAL_IMAGE)) },
    video_url: {
      model: 'tongyi-embedding-vision-plus',
      input: { kind: 'video', source: VIDEO_KEY, video: preparedVideo(urls.video) },
    },
    fused: {
      model: 'qwen3-vl-embedding',
      dimension: 1024,
      fps: 0.5,
      input: {
        kind: 'fused',
        source: 'pair',
        text: { text: FUSED_TEXT, tokens: qwenTokens.count(FUSED_TEXT) },
        image: preparedImage(IMAGE, urls.image),
        video: preparedVideo(urls.video),
      },
    },
  };
}

/** One request of the project's client, exactly as jobs/api-call.ts sends a planned request. */
async function sendOurs(
  client: DashScopeClient,
  c: { model: string; input: PreparedInput; fps?: number; dimension?: number },
): Promise<{ result: EmbedResult; contents: readonly ApiContent[] }> {
  const spec = resolveModel(c.model);
  const opts: PlanOptions = {
    model: spec,
    dimension: c.dimension ?? spec.defaultDimension,
    ...(c.fps === undefined ? {} : { fps: c.fps }),
  };
  const plan = planRequests([c.input], opts, qwenTokens);
  if (plan.rejections.length > 0 || plan.requests.length !== 1)
    throw new Error(`not one request: ${JSON.stringify(plan.rejections)}`);
  const body = requestBody(opts, plan.requests[0]!);
  const result = await client.embed({
    model: body.model,
    contents: body.input.contents,
    parameters: body.parameters ?? {},
    dimension: opts.dimension,
  });
  return { result, contents: body.input.contents };
}

beforeAll(async () => {
  if (!existsSync(PYTHON)) throw new Error(`no Python virtual environment at test/python/.venv: ${SETUP_HINT}`);
  s3 = await startMinio();
  s3client = testS3Client(s3);
  await createBucket(s3client, BUCKET);
  await putObject(s3client, BUCKET, IMAGE_KEY, IMAGE, 'image/png');
  await putObject(s3client, BUCKET, VIDEO_KEY, VIDEO, 'video/mp4');
  // the project's own presigning, as the pipeline makes video (and URL-mode image) URLs
  const store: ObjectStore = createS3Store({ endpoint: s3.endpoint, credentials: s3.credentials });
  urls = {
    image: await store.presign(BUCKET, IMAGE_KEY, 3600),
    video: await store.presign(BUCKET, VIDEO_KEY, 3600),
    missing: await store.presign(BUCKET, MISSING_KEY, 3600),
  };

  // Every model unlimited but one, which allows one request a minute: the 429 is the
  // simulator's real quota answer, not an injected fault.
  const rateLimits = Object.fromEntries(
    MODEL_NAMES.map((m): [string, RateLimit] => [
      m,
      m === THROTTLED ? { rpm: 1, tpm: null } : { rpm: null, tpm: null },
    ]),
  );
  sim = await startSimulator({ apiKey: KEY, port: 0, rateLimits, captureRequests: 100, allowPrivateUrls: true });

  tmp = await mkdtemp(join(tmpdir(), 'sdk-test-'));
  const localImage = join(tmp, 'local.png');
  await writeFile(localImage, LOCAL_IMAGE);
  const run = await runScript({
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LANG: 'C.UTF-8',
    DASHSCOPE_BASE_URL: sim.url,
    DASHSCOPE_API_KEY: KEY,
    SDK_WRONG_KEY: WRONG_KEY,
    SDK_IMAGE_URL: urls.image,
    SDK_VIDEO_URL: urls.video,
    SDK_LOCAL_IMAGE: localImage,
    SDK_MISSING_URL: urls.missing,
    SDK_THROTTLED_MODEL: THROTTLED,
  });
  if (run.code !== 0) {
    const hint = /No module named/.test(run.stderr) ? `\n(${SETUP_HINT})` : '';
    throw new Error(`test/python/sdk_examples.py exited with ${run.code}:\n${run.stderr}${hint}`);
  }
  sdk = JSON.parse(run.stdout) as SdkRun;
  sdkLog = sim.requests();

  const client = new DashScopeClient({ apiKey: KEY, baseUrl: sim.url });
  for (const [name, c] of Object.entries(ourInputs())) ours.set(name, await sendOurs(client, c));
  ourLog = sim.requests().slice(sdkLog.length);
  if (process.env.SDK_TEST_DUMP)
    await writeFile(process.env.SDK_TEST_DUMP, JSON.stringify({ sdk, sdkLog, ourLog }, null, 2));
}, 120_000);

afterAll(async () => {
  await sim?.close();
  s3client?.destroy();
  await s3?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

// ---------- helpers ----------

function sdkCase(name: string): SdkCase {
  const c = sdk.cases[name];
  if (!c) throw new Error(`the script printed no case "${name}"`);
  if (c.raised !== undefined) throw new Error(`the SDK raised in "${name}": ${c.raised}`);
  return c;
}

/** The simulator's log entry of a case's request, found by the request_id it answered with. */
function sdkRequest(name: string): CapturedRequest {
  const id = sdkCase(name).request_id;
  const entry = sdkLog.find((r) => r.answer?.requestId === id);
  if (!entry) throw new Error(`no captured request answered with request_id ${String(id)} (case ${name})`);
  return entry;
}

function ourRequest(name: string): CapturedRequest {
  const id = ours.get(name)?.result.requestId;
  const entry = ourLog.find((r) => r.answer?.requestId === id);
  if (!entry) throw new Error(`no captured request of the project's client for case ${name}`);
  return entry;
}

interface Body {
  model: string;
  input: { contents: unknown[] };
  parameters: Record<string, unknown>;
}
const bodyOf = (r: CapturedRequest): Body => r.body as Body;
/** A bare-string element is a text element: the page's two forms of one thing. */
const asObject = (e: unknown): unknown => (typeof e === 'string' ? { text: e } : e);
const mediaType = (r: CapturedRequest): string | undefined => r.headers['content-type']?.split(';')[0]?.trim();

const textUsage = (text: string): Record<string, unknown> => {
  const n = countTokens(text);
  return {
    input_tokens: n,
    image_tokens: 0,
    image_count: 0,
    input_tokens_details: { text_tokens: n, image_tokens: 0 },
    total_tokens: n,
  };
};
const mediaUsage = (
  imageTok: number,
  images: number,
  extra: Record<string, unknown> = {},
): Record<string, unknown> => ({
  input_tokens: 0,
  image_tokens: imageTok,
  image_count: images,
  input_tokens_details: { text_tokens: 0, image_tokens: imageTok },
  total_tokens: imageTok,
  ...extra,
});

// ---------- what the SDK hands its caller ----------

describe('the API page examples through the provider SDK', () => {
  const videoTok = (fps: number): number => videoTokens(VIDEO_SECONDS, fps, DEFAULT_VIDEO_TOKEN_RULE);
  const fusedText = countTokens(FUSED_TEXT);
  const fusedImage = imageTokens(256, 256) + videoTok(0.5);
  const expected: Record<string, { type: string; length: number; usage: Record<string, unknown> }> = {
    text: { type: 'text', length: 1152, usage: textUsage(TEXT) },
    text_bare_string: { type: 'text', length: 1152, usage: textUsage(TEXT) },
    image_url: { type: 'image', length: 1152, usage: mediaUsage(imageTokens(256, 256), 1) },
    local_image_base64: { type: 'image', length: 1152, usage: mediaUsage(imageTokens(120, 90), 1) },
    video_url: { type: 'video', length: 1152, usage: mediaUsage(videoTok(1), 0, { duration: VIDEO_SECONDS }) },
    fused: {
      type: 'vl',
      length: 1024,
      usage: {
        input_tokens: fusedText,
        image_tokens: fusedImage,
        image_count: 1,
        input_tokens_details: { text_tokens: fusedText, image_tokens: fusedImage },
        total_tokens: fusedText + fusedImage,
        duration: VIDEO_SECONDS,
      },
    },
  };

  it('runs the pinned SDK', () => {
    const pinned = /^dashscope==(\S+)$/m.exec(readFileSync(join(ROOT, 'test/python/requirements.txt'), 'utf8'))?.[1];
    expect(pinned).toBeDefined();
    expect(sdk.dashscope_version).toBe(pinned);
  });

  it.each(Object.keys(expected))('%s: 200, one embedding with index, type and dimension, and usage', (name) => {
    const c = sdkCase(name);
    const want = expected[name]!;
    expect(c.python_type).toBe('DashScopeAPIResponse');
    expect(c.status_code).toBe(200);
    expect(c.ok).toBe(true);
    expect(c.code).toBe('');
    expect(c.message).toBe('');
    expect(c.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(c.output?.embeddings.map(({ index, type, length, numbers }) => ({ index, type, length, numbers }))).toEqual([
      { index: 0, type: want.type, length: want.length, numbers: true },
    ]);
    expect(c.usage).toEqual(want.usage);
  });

  it('a wrong key reaches the caller as 401 InvalidApiKey, without raising', () => {
    const c = sdkCase('wrong_key');
    expect(c).toMatchObject({
      python_type: 'DashScopeAPIResponse',
      status_code: 401,
      code: 'InvalidApiKey',
      message: 'Invalid API-key provided.',
      output: null,
      usage: null,
    });
    expect(c.request_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('a refused input reaches the caller as 400 with code and message', () => {
    const dimension = sdkCase('refused_dimension');
    expect(dimension).toMatchObject({ status_code: 400, code: 'InvalidParameter', output: null, usage: null });
    expect(dimension.message).toBe(
      'dimension 1000 is not supported by qwen3-vl-embedding (supported: 2560, 2048, 1536, 1024, 768, 512, 256).',
    );
    expect(sdkCase('refused_download')).toMatchObject({
      status_code: 400,
      code: 'InternalError.Algo.InvalidParameter',
      message: 'Failed to download multimodal content',
      output: null,
      usage: null,
    });
  });

  it("the page's commented-out parameters={...} is no dimension: the SDK nests it, and the default comes back", () => {
    const c = sdkCase('fused_parameters_kwarg');
    expect(c).toMatchObject({ status_code: 200, ok: true });
    // the simulator ignores parameter keys it does not know (the SDK has several the page does not list)
    expect(c.output?.embeddings.map((e) => [e.type, e.length])).toEqual([['vl', 2560]]);
    expect(bodyOf(sdkRequest('fused_parameters_kwarg')).parameters).toEqual({ parameters: { dimension: 1024 } });
  });

  it('a local file path makes the SDK ask for its upload service, which the simulator does not have: it raises', () => {
    expect(sdk.cases.local_file_path?.raised).toMatch(
      /^UploadFileException: Get upload certificate failed, code: NotFound/,
    );
    const asked = sdkLog.filter((r) => r.path.startsWith('/api/v1/uploads'));
    expect(
      asked.map((r) => [r.method, new URL(r.path, 'http://x').searchParams.get('action'), r.answer?.status]),
    ).toEqual([['GET', 'getPolicy', 404]]);
    expect(asked[0]?.headers.authorization).toBe('Bearer [redacted]');
  });

  it('a 429 is returned, not raised: status_code and code say why', () => {
    expect(sdkCase('quota_first')).toMatchObject({ status_code: 200, ok: true });
    const c = sdkCase('quota_second');
    expect(c).toMatchObject({
      python_type: 'DashScopeAPIResponse',
      status_code: 429,
      ok: false,
      code: 'Throttling.RateQuota',
      output: null,
      usage: null,
    });
    expect(c.message).toBe('Requests rate limit exceeded, please try again later.');
  });
});

// ---------- what the SDK sends, and what the project's client sends ----------

describe('the requests: SDK and project client', () => {
  const PAGE_CASES = ['text', 'image_url', 'local_image_base64', 'video_url', 'fused'];
  /** Every case but the upload one, which never reaches the embedding endpoint. */
  const EMBEDDING_CASES = [
    ...PAGE_CASES,
    'fused_parameters_kwarg',
    'text_bare_string',
    'wrong_key',
    'refused_dimension',
    'refused_download',
    'quota_first',
    'quota_second',
  ];

  it('the request log holds no key, and every SDK request is logged with its answer', () => {
    const all = JSON.stringify(sim?.requests());
    expect(all.includes(KEY)).toBe(false);
    expect(all.includes(WRONG_KEY)).toBe(false);
    expect(all.includes('0123456789abcdef')).toBe(false);
    // one request a case
    expect(sdkLog).toHaveLength(Object.keys(sdk.cases).length);
    expect(ourLog).toHaveLength(ours.size);
    for (const r of [...sdkLog, ...ourLog]) expect(r.answer?.status).toBeDefined();
  });

  it('the SDK: the page path, POST, JSON, bearer key, its own identification headers', () => {
    const v = sdk.dashscope_version;
    for (const name of EMBEDDING_CASES) {
      const r = sdkRequest(name);
      expect({ method: r.method, path: r.path }).toEqual({ method: 'POST', path: EMBEDDING_PATH });
      expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(r.headers.authorization).toBe('Bearer [redacted]');
      expect(r.headers.accept).toBe('application/json; charset=utf-8');
      expect(r.headers['user-agent']).toMatch(new RegExp(`^dashscope/${v.replace(/\./g, '\\.')}; python/3\\.`));
      expect(r.headers['x-dashscope-sdk-client']).toBe(`python-sdk/${v}/embeddings`);
      expect(r.headers['x-dashscope-sdk-session-id']).toMatch(/^[0-9a-f]{32}$/);
      // no other X-DashScope-* header: no upload to the SDK's OSS, no data inspection switch
      expect(
        Object.keys(r.headers)
          .filter((h) => h.startsWith('x-dashscope-'))
          .sort(),
      ).toEqual(['x-dashscope-sdk-client', 'x-dashscope-sdk-session-id']);
      expect(Object.keys(bodyOf(r)).sort()).toEqual(['input', 'model', 'parameters']);
    }
  });

  it('the SDK puts call arguments in parameters, and the elements as given', () => {
    expect(bodyOf(sdkRequest('text'))).toEqual({
      model: 'tongyi-embedding-vision-plus',
      input: { contents: [{ text: TEXT }] },
      parameters: {},
    });
    expect(bodyOf(sdkRequest('text_bare_string')).input.contents).toEqual([TEXT]);
    expect(bodyOf(sdkRequest('fused'))).toEqual({
      model: 'qwen3-vl-embedding',
      input: { contents: [{ text: FUSED_TEXT, image: urls.image, video: urls.video }] },
      parameters: { dimension: 1024, fps: 0.5 },
    });
    expect(bodyOf(sdkRequest('refused_dimension')).parameters).toEqual({ dimension: 1000 });
  });

  it.each(PAGE_CASES.concat('text_bare_string'))(
    '%s: same path, method, media type, auth, model, elements and parameters as the project client',
    (name) => {
      const theirs = sdkRequest(name);
      const mine = ourRequest(name);
      expect({ method: mine.method, path: mine.path }).toEqual({ method: theirs.method, path: theirs.path });
      expect(mediaType(mine)).toBe('application/json');
      expect(mediaType(theirs)).toBe('application/json');
      expect(mine.headers.authorization).toBe('Bearer [redacted]');
      expect(theirs.headers.authorization).toBe('Bearer [redacted]');
      expect(Object.keys(bodyOf(mine)).sort()).toEqual(['input', 'model', 'parameters']);

      const a = bodyOf(theirs);
      const b = bodyOf(mine);
      expect(b.model).toBe(a.model);
      expect(b.input.contents).toHaveLength(a.input.contents.length);
      // same elements once the two documented text forms are taken as one
      expect(b.input.contents.map(asObject)).toEqual(a.input.contents.map(asObject));
      if (name === 'text_bare_string') expect(b.input.contents).toEqual(a.input.contents);
      // same parameters, but for the dimension the project always states (the model's default here)
      const spec = resolveModel(a.model);
      const extra = Object.keys(b.parameters).filter((k) => !(k in a.parameters));
      expect(extra).toEqual(spec.acceptsDimension && !('dimension' in a.parameters) ? ['dimension'] : []);
      if (extra.length > 0) expect(b.parameters.dimension).toBe(spec.defaultDimension);
      for (const [k, v] of Object.entries(a.parameters)) expect(b.parameters[k]).toEqual(v);

      // and the same answer: same types, same vectors (the simulator's are deterministic)
      const sdkOut = sdkCase(name).output?.embeddings ?? [];
      const ourOut = ours.get(name)!.result;
      expect(ourOut.types).toEqual(sdkOut.map((e) => e.type));
      sdkOut.forEach((e, i) => {
        expect(ourOut.vectors[i]).toHaveLength(e.length);
        e.head.forEach((x, j) => expect(ourOut.vectors[i]![j]).toBeCloseTo(x, 12));
      });
    },
  );

  it("headers: the page's two from both; besides them, the SDK identifies itself and the project client sends Node's defaults", () => {
    // Transport headers each HTTP stack sets its own way, and that the API does not read.
    const TRANSPORT = ['host', 'connection', 'content-length', 'accept-encoding', 'accept-language', 'sec-fetch-mode'];
    const names = (h: Readonly<Record<string, string>>): string[] =>
      Object.keys(h)
        .filter((n) => !TRANSPORT.includes(n))
        .sort();
    for (const name of PAGE_CASES) {
      const theirs = sdkRequest(name).headers;
      const mine = ourRequest(name).headers;
      expect(names(theirs)).toEqual([
        'accept',
        'authorization',
        'content-type',
        'user-agent',
        'x-dashscope-sdk-client',
        'x-dashscope-sdk-session-id',
      ]);
      expect(names(mine)).toEqual(['accept', 'authorization', 'content-type', 'user-agent']);
      expect(mine['content-type']).toBe('application/json');
      expect(mine.authorization).toBe(theirs.authorization);
    }
  });

  it('GET /_sim/requests serves the log; POST /_sim/reset empties it', async () => {
    const url = sim?.url ?? '';
    const served = (await (await fetch(`${url}/_sim/requests`)).json()) as {
      capacity: number;
      requests: CapturedRequest[];
    };
    expect(served.capacity).toBe(100);
    expect(served.requests).toEqual(sim?.requests());
    await fetch(`${url}/_sim/reset`, { method: 'POST' });
    expect(sim?.requests()).toEqual([]);
  });
});
