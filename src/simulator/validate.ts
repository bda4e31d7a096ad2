/**
 * A request checked against its model's resolved catalog entry, in the order a careful
 * server would: parameters and element shapes, then the per-request counts (elements,
 * images, videos), text tokens, media (decoded or downloaded, then checked for size,
 * real format and shape), and last the test markers. The first problem found is the
 * answer, thrown as `Refused`; a request that passes comes back with everything the
 * vectors and the usage need.
 *
 * The limits are the simulator's own (contract.ts), and so are the token count (the
 * tokenizer package, plus the server's template tokens for the limit), the shape rule
 * and the image-token rule. Only the sniffing of formats comes from the pipeline's media
 * module: which bytes are a PNG is not a limit of the contract.
 */
import { createHash } from 'node:crypto';
import { sniffImage, sniffVideo } from '../media.js';
import type { ImageFormat, ModelSpec, VideoFormat } from '../models.js';
import {
  MISSING_CONTENT_LENGTH,
  chargedTextTokens,
  imageShapeRefusal,
  patchTokens,
  qwenTokenCount,
} from './contract.js';
import type { EmbeddingType } from '../api.js';
import { parseElement, parseParameters } from './contents.js';
import type { Envelope, ParsedElement } from './contents.js';
import { RequestDownloads } from './download.js';
import type { Fetched } from './download.js';
import {
  DATA_INSPECTION_FAILED,
  DATA_INSPECTION_MARKER,
  DOWNLOAD_FAILED,
  INTERNAL_ERROR,
  INTERNAL_ERROR_MARKER,
  Refused,
  URL_ERROR,
  invalidParameter,
} from './refusals.js';
import type { LimitKind, Refusal } from './refusals.js';

export interface ImageInput {
  readonly bytes: Uint8Array;
  readonly format: ImageFormat;
  readonly width: number;
  readonly height: number;
}

export interface VideoInput {
  readonly bytes: Uint8Array;
  readonly format: VideoFormat;
}

export interface ValidElement {
  readonly index: number;
  readonly type: EmbeddingType;
  readonly text?: string;
  readonly textTokens: number;
  readonly images: readonly ImageInput[];
  readonly video?: VideoInput;
}

export interface ValidRequest {
  readonly spec: ModelSpec;
  readonly dimension: number;
  readonly fps: number;
  readonly instruct?: string;
  readonly elements: readonly ValidElement[];
}

export interface ValidateSettings {
  readonly maxDataUriBytes: number;
  readonly downloadTimeoutMs: number;
  /** Download media from loopback and private hosts (the provider cannot). @defaultValue false */
  readonly allowPrivateUrls?: boolean;
  /** Told how many URLs were fetched, whether the request passes or not. */
  readonly onDownloads?: (count: number) => void;
}

const DATA_URI_RE = /^data:image\/([a-z0-9.+-]+);base64,/i;

/** The formats a data URI may declare, as the bytes' real format (aliases included). */
const DECLARED_FORMATS: ReadonlyMap<string, readonly ImageFormat[]> = new Map<string, readonly ImageFormat[]>([
  ['jpeg', ['jpeg']],
  ['jpg', ['jpeg']],
  ['pjpeg', ['jpeg']],
  ['png', ['png']],
  ['webp', ['webp']],
  ['bmp', ['bmp']],
  ['x-ms-bmp', ['bmp']],
  ['x-bmp', ['bmp']],
  ['dib', ['bmp', 'dib']],
  ['tiff', ['tiff']],
  ['tif', ['tiff']],
  ['ico', ['ico']],
  ['x-icon', ['ico']],
  ['vnd.microsoft.icon', ['ico']],
  ['icns', ['icns']],
  ['sgi', ['sgi']],
  ['x-sgi', ['sgi']],
  ['x-rgb', ['sgi']],
  ['gif', ['gif']],
  ['heic', ['heic']],
  ['heif', ['heic']],
  ['avif', ['avif']],
]);

const MISSING_LENGTH: Refusal = { status: 400, code: 'InternalError.Algo', message: MISSING_CONTENT_LENGTH };
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const HTTP_RE = /^https?:\/\//i;

const limit = (message: string, kind: LimitKind): never => {
  throw new Refused(invalidParameter(message, kind));
};
const refuse = (message: string): never => {
  throw new Refused(invalidParameter(message));
};

function checkCounts(spec: ModelSpec, elements: readonly ParsedElement[]): void {
  const n = elements.length;
  if (spec.maxElements !== null && n > spec.maxElements) {
    limit(
      `input.contents has ${n} elements, over ${spec.name}'s limit of ${spec.maxElements} elements per request.`,
      'elements',
    );
  }
  const images = elements.reduce((s, e) => s + e.images.length, 0);
  if (spec.maxImagesPerRequest !== null && images > spec.maxImagesPerRequest) {
    limit(
      `The request has ${images} images, over ${spec.name}'s limit of ${spec.maxImagesPerRequest} images per request.`,
      'images',
    );
  }
  const videos = elements.filter((e) => e.video !== undefined).length;
  if (spec.maxVideosPerRequest !== null && videos > spec.maxVideosPerRequest) {
    limit(
      `The request has ${videos} videos, over ${spec.name}'s limit of ${spec.maxVideosPerRequest} videos per request.`,
      'videos',
    );
  }
}

function checkRequestTokens(spec: ModelSpec, total: number, what: string): void {
  if (spec.textLimitScope === 'per-request' && total > spec.textTokenLimit) {
    limit(
      `${what} of this request total ${total} tokens, over ${spec.name}'s limit of ${spec.textTokenLimit} tokens per request.`,
      'text-tokens',
    );
  }
}

/**
 * Token counts of recent texts. Clients resend the same texts after a 429 or a fault,
 * and counting a 32k-token text costs tens of milliseconds of the one server thread.
 * Keyed by a digest so the cache holds no texts; oldest entries go first.
 */
const TOKEN_CACHE_MAX = 20_000;
const tokenCache = new Map<string, number>();

function cachedTokens(text: string): number {
  if (text.length < 256) return qwenTokenCount(text);
  const key = createHash('sha1').update(text).digest('base64');
  let n = tokenCache.get(key);
  if (n === undefined) {
    n = qwenTokenCount(text);
    if (tokenCache.size >= TOKEN_CACHE_MAX) tokenCache.delete(tokenCache.keys().next().value ?? '');
    tokenCache.set(key, n);
  }
  return n;
}

/**
 * Each text's own tokens (what the usage reports); the limits are checked on those plus
 * the template tokens the server adds to each text (contract.ts).
 */
function countText(spec: ModelSpec, elements: readonly ParsedElement[]): number[] {
  const counts = elements.map((e) => (e.text === undefined ? 0 : cachedTokens(e.text)));
  const charged = elements.map((e, i) => (e.text === undefined ? 0 : chargedTextTokens(counts[i] ?? 0)));
  if (spec.textLimitScope === 'per-text') {
    charged.forEach((tokens, i) => {
      if (tokens > spec.textTokenLimit) {
        limit(
          `contents[${i}]: text of ${counts[i]} tokens (${tokens} with the template) is over ${spec.name}'s limit of ${spec.textTokenLimit} tokens per text.`,
          'text-tokens',
        );
      }
    });
  }
  checkRequestTokens(
    spec,
    charged.reduce((s, t) => s + t, 0),
    'Texts (with their template tokens)',
  );
  return counts;
}

function downloaded(f: Fetched, where: string, what: 'image' | 'video', max: number): Uint8Array {
  if (f.kind === 'failed') throw new Refused(DOWNLOAD_FAILED);
  if (f.kind === 'no-length') throw new Refused(MISSING_LENGTH);
  if (f.kind === 'too-large')
    return limit(
      `${where}: ${what} of at least ${f.atLeast} bytes is over the limit of ${max} bytes.`,
      `${what}-bytes`,
    );
  return f.bytes;
}

async function resolveImage(
  ref: string,
  where: string,
  spec: ModelSpec,
  downloads: RequestDownloads,
  settings: ValidateSettings,
): Promise<ImageInput> {
  let bytes: Uint8Array;
  let declared: string | undefined;
  if (ref.startsWith('data:')) {
    if (ref.length > settings.maxDataUriBytes) {
      limit(
        `${where}: data URI of ${ref.length} bytes is over the limit of ${settings.maxDataUriBytes} bytes.`,
        'data-uri-bytes',
      );
    }
    const prefix = DATA_URI_RE.exec(ref);
    if (!prefix) return refuse(`${where}: a data URI must be data:image/{format};base64,{data}.`);
    declared = (prefix[1] ?? '').toLowerCase();
    if (!DECLARED_FORMATS.has(declared))
      return refuse(`${where}: the data URI declares image/${declared}, which is not an image format.`);
    const payload = ref.slice(prefix[0].length);
    if (!BASE64_RE.test(payload)) return refuse(`${where}: the data URI's data is not valid base64.`);
    bytes = Buffer.from(payload, 'base64');
  } else if (HTTP_RE.test(ref)) {
    bytes = downloaded(await downloads.get(ref), where, 'image', spec.imageMaxBytes);
  } else {
    throw new Refused(URL_ERROR);
  }
  if (bytes.length > spec.imageMaxBytes)
    limit(
      `${where}: image of ${bytes.length} bytes is over ${spec.name}'s limit of ${spec.imageMaxBytes} bytes.`,
      'image-bytes',
    );
  const facts = sniffImage(bytes);
  if ('error' in facts) return refuse(`${where}: ${facts.error}.`);
  if (declared !== undefined && !(DECLARED_FORMATS.get(declared) ?? []).includes(facts.format)) {
    return refuse(`${where}: the data URI declares image/${declared} but its bytes are a ${facts.format} image.`);
  }
  if (!spec.imageFormats.includes(facts.format)) {
    return refuse(
      `${where}: ${facts.format} images are not supported by ${spec.name} (supported: ${spec.imageFormats.join(', ')}).`,
    );
  }
  const shape = imageShapeRefusal(facts.width, facts.height);
  if (shape) return refuse(`${where}: ${shape}.`);
  return { bytes, ...facts };
}

async function resolveVideo(
  ref: string,
  where: string,
  spec: ModelSpec,
  downloads: RequestDownloads,
): Promise<VideoInput> {
  if (ref.startsWith('data:')) return refuse(`${where}: a video must be a URL; data URIs are not accepted for video.`);
  if (!HTTP_RE.test(ref)) throw new Refused(URL_ERROR);
  const bytes = downloaded(await downloads.get(ref), where, 'video', spec.videoMaxBytes);
  if (bytes.length > spec.videoMaxBytes)
    limit(
      `${where}: video of ${bytes.length} bytes is over ${spec.name}'s limit of ${spec.videoMaxBytes} bytes.`,
      'video-bytes',
    );
  const sniffed = sniffVideo(bytes);
  if (!sniffed) return refuse(`${where}: not a video (unrecognised container).`);
  // MPEG program streams are both "mpeg" and "mpg" to the catalog.
  const format =
    sniffed === 'mpeg' && !spec.videoFormats.includes('mpeg') && spec.videoFormats.includes('mpg') ? 'mpg' : sniffed;
  if (!spec.videoFormats.includes(format)) {
    return refuse(
      `${where}: ${format} videos are not supported by ${spec.name} (supported: ${spec.videoFormats.join(', ')}).`,
    );
  }
  return { bytes, format };
}

type Resolved = { ok: ValidElement } | { refusal: Refusal };

async function resolveElement(
  e: ParsedElement,
  tokens: number,
  spec: ModelSpec,
  downloads: RequestDownloads,
  settings: ValidateSettings,
): Promise<Resolved> {
  try {
    const at = `contents[${e.index}]`;
    const multi = e.type === 'multi_images';
    const [images, video] = await Promise.all([
      Promise.all(
        e.images.map((ref, j) =>
          resolveImage(ref, multi ? `${at}.multi_images[${j}]` : `${at}.image`, spec, downloads, settings),
        ),
      ),
      e.video === undefined ? undefined : resolveVideo(e.video, `${at}.video`, spec, downloads),
    ]);
    const base = { index: e.index, type: e.type, textTokens: tokens, images };
    return {
      ok: { ...base, ...(e.text === undefined ? {} : { text: e.text }), ...(video === undefined ? {} : { video }) },
    };
  } catch (err) {
    if (err instanceof Refused) return { refusal: err.refusal };
    throw err;
  }
}

/** Everything after the envelope; throws `Refused` with the first problem. */
export async function validateRequest(envelope: Envelope, settings: ValidateSettings): Promise<ValidRequest> {
  const { spec } = envelope;
  const params = parseParameters(envelope.parameters, spec);
  const parsed = envelope.contents.map((raw, i) => parseElement(raw, i, spec));
  checkCounts(spec, parsed);
  const tokens = countText(spec, parsed);

  // Downloads of a request run in parallel; the answer is the first element's problem.
  const downloads = new RequestDownloads({
    timeoutMs: settings.downloadTimeoutMs,
    maxBytes: Math.max(spec.imageMaxBytes, spec.videoMaxBytes),
    allowPrivateUrls: settings.allowPrivateUrls ?? false,
  });
  let resolved: Resolved[];
  try {
    resolved = await Promise.all(parsed.map((e, i) => resolveElement(e, tokens[i] ?? 0, spec, downloads, settings)));
  } finally {
    settings.onDownloads?.(downloads.count);
  }
  const elements: ValidElement[] = [];
  for (const r of resolved) {
    if ('refusal' in r) throw new Refused(r.refusal);
    elements.push(r.ok);
  }
  if (spec.imageTokensCountTowardLimit) {
    const imageTok = elements.reduce(
      (s, e) => s + e.images.reduce((t, img) => t + patchTokens(img.width, img.height), 0),
      0,
    );
    const textTok = elements.reduce((s, e) => s + (e.text === undefined ? 0 : chargedTextTokens(e.textTokens)), 0);
    checkRequestTokens(spec, textTok + imageTok, 'Text (with template tokens) and image tokens');
  }

  // Test hooks, after every real check: moderation first, as the provider would.
  if (elements.some((e) => e.text?.includes(DATA_INSPECTION_MARKER))) throw new Refused(DATA_INSPECTION_FAILED);
  if (elements.some((e) => e.text?.includes(INTERNAL_ERROR_MARKER))) throw new Refused(INTERNAL_ERROR);

  const base = { spec, dimension: params.dimension, fps: params.fps, elements };
  return params.instruct === undefined ? base : { ...base, instruct: params.instruct };
}
