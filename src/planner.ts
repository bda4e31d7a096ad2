/**
 * The request planner: prepared inputs in, API requests out, each within the model's
 * limits (elements, images and videos per request, per-text or per-request tokens, byte
 * limits, request body size). Pure: no I/O; the tokenizer is passed in.
 *
 * Every input comes out exactly once: in one request, or as a rejection with a reason.
 * Texts over the limit are first split into token-bounded chunks that remember their
 * source and position. Requests are packed first-fit decreasing, which fills them as far
 * as the limits allow (the scarce resources, media and tokens, are placed first).
 */
import type { ApiContent, ApiParameters, ApiRequestBody } from './api.js';
import { dataUriLength, imageShapeProblem, imageTokens, videoTokensEstimate } from './media.js';
import type { ImageFormat, ModelSpec, VideoFormat } from './models.js';
import type { TextChunk, TokenCounter } from './tokens.js';

/** An image ready to send: inline bytes (sent as a data URI) or a URL the API downloads. */
export type ImagePayload = { kind: 'inline'; data: Uint8Array } | { kind: 'url'; url: string };

export interface PreparedImage {
  readonly format: ImageFormat;
  readonly width: number;
  readonly height: number;
  /** Size of the image file in bytes (the model's byte limit applies to it). */
  readonly bytes: number;
  readonly payload: ImagePayload;
}

export interface PreparedVideo {
  readonly format: VideoFormat;
  readonly bytes: number;
  /** A URL the API can download; videos have no inline form. */
  readonly url: string;
}

export interface PreparedText {
  readonly text: string;
  /** Tokens of the text; for a text chunked beforehand, the sum of its chunks'. */
  readonly tokens: number;
  /**
   * Chunks made beforehand for `maxTokens` and `overlap` (a worker chunks long texts in
   * slices that yield to the event loop: prepare.ts). The planner uses them when its own
   * chunking is the same, and splits the text itself otherwise.
   */
  readonly chunks?: TextChunks;
}

export interface TextChunking {
  readonly maxTokens: number;
  readonly overlap: number;
}

export interface TextChunks extends TextChunking {
  readonly list: readonly TextChunk[];
}

/** `source` is the caller's id for the object the input came from (opaque here). */
export type PreparedInput =
  | ({ readonly kind: 'text'; readonly source: string } & PreparedText)
  | { readonly kind: 'image'; readonly source: string; readonly image: PreparedImage }
  | { readonly kind: 'video'; readonly source: string; readonly video: PreparedVideo }
  | {
      readonly kind: 'fused';
      readonly source: string;
      readonly text?: PreparedText;
      readonly image?: PreparedImage;
      readonly video?: PreparedVideo;
    }
  | { readonly kind: 'multi_images'; readonly source: string; readonly images: readonly PreparedImage[] };

export type InputKind = PreparedInput['kind'];

export type RejectionCode =
  | 'empty-text'
  | 'unsupported-format'
  | 'too-large'
  | 'bad-shape'
  | 'text-too-long'
  | 'modality-not-supported'
  | 'too-many-images'
  | 'empty-group'
  | 'over-request-limit';

export interface Rejection {
  readonly source: string;
  readonly code: RejectionCode;
  readonly reason: string;
}

/** One element of a planned request, with what it costs against each limit. */
export interface PlannedInput {
  readonly source: string;
  readonly kind: InputKind;
  /** Chunk position within its source (0 and 1 for anything that is not a split text). */
  readonly chunk: number;
  readonly chunkCount: number;
  /** For text chunks: the chunk's UTF-16 range in the source text. */
  readonly charStart?: number;
  readonly charEnd?: number;
  readonly content: ApiContent;
  readonly textTokens: number;
  /** Tokens that count toward a per-request cap (text, plus images where the model counts them). */
  readonly limitTokens: number;
  /** Expected input tokens of the usage (text plus images by the pixel rule), for rate limiting. */
  readonly usageTokens: number;
  readonly images: number;
  readonly videos: number;
  /** Bytes this element adds to the JSON body. */
  readonly bodyBytes: number;
}

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

/**
 * The margin the planner keeps under each token limit for the server's template tokens,
 * per text. The provider does not publish the figure; the examples on its API page show 4
 * and 5 (a 5-token text answered `input_tokens: 10`, a 6-token one `text_tokens: 10`), and
 * the simulator charges 5 (src/simulator/contract.ts). 8 leaves 3 tokens for a template
 * that grows.
 */
export const TEMPLATE_TOKEN_MARGIN = 8;

/** 6 MiB: the body cap of the provider's compatible gateway. */
export const DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024;

export interface PlanOptions {
  readonly model: ModelSpec;
  readonly dimension: number;
  /** Largest request body, base64 included. @defaultValue 6 MiB */
  readonly maxBodyBytes?: number;
  /** Largest text chunk in tokens; capped at the model's text limit. @defaultValue the model's limit */
  readonly chunkTokens?: number | undefined;
  /** Tokens shared by consecutive chunks. @defaultValue 0 */
  readonly chunkOverlap?: number;
  /**
   * Tokens kept free for each text under the model's token limit, for the template tokens
   * the server adds to every text before counting it: a chunk holds at most
   * `limit - tokenMargin` tokens, and under a per-request limit each text element costs its
   * tokens plus `tokenMargin`. @defaultValue TEMPLATE_TOKEN_MARGIN (8)
   */
  readonly tokenMargin?: number;
  readonly fps?: number;
  readonly instruct?: string;
}

const utf8Bytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value));

/** The `parameters` object of every request of a run. */
export function requestParameters(opts: Pick<PlanOptions, 'model' | 'dimension' | 'fps' | 'instruct'>): ApiParameters {
  const p: ApiParameters = {};
  if (opts.model.acceptsDimension) p.dimension = opts.dimension;
  if (opts.fps !== undefined) p.fps = opts.fps;
  if (opts.instruct !== undefined) p.instruct = opts.instruct;
  return p;
}

/** The JSON body of a planned request. */
export function requestBody(
  opts: Pick<PlanOptions, 'model' | 'dimension' | 'fps' | 'instruct'>,
  request: PlannedRequest,
): ApiRequestBody {
  return {
    model: opts.model.name,
    input: { contents: request.inputs.map((i) => i.content) },
    parameters: requestParameters(opts),
  };
}

function imageContent(image: PreparedImage): string {
  return image.payload.kind === 'url'
    ? image.payload.url
    : `data:image/${image.format};base64,${Buffer.from(image.payload.data).toString('base64')}`;
}

function imageBodyBytes(image: PreparedImage): number {
  // +2 for the JSON quotes; base64 and data-URI prefixes never need escaping.
  return (
    (image.payload.kind === 'url'
      ? utf8Bytes(image.payload.url) - 2
      : dataUriLength(image.format, image.payload.data.length)) + 2
  );
}

function imageProblem(model: ModelSpec, image: PreparedImage): Omit<Rejection, 'source'> | undefined {
  if (!model.imageFormats.includes(image.format)) {
    return {
      code: 'unsupported-format',
      reason: `${model.name} does not take ${image.format} images (it takes ${model.imageFormats.join(', ')})`,
    };
  }
  if (image.bytes > model.imageMaxBytes) {
    return {
      code: 'too-large',
      reason: `image of ${image.bytes} bytes is over ${model.name}'s limit of ${model.imageMaxBytes}`,
    };
  }
  const shape = imageShapeProblem(image.width, image.height);
  if (shape) return { code: 'bad-shape', reason: shape };
  return undefined;
}

function videoProblem(model: ModelSpec, video: PreparedVideo): Omit<Rejection, 'source'> | undefined {
  if (!model.videoFormats.includes(video.format)) {
    return {
      code: 'unsupported-format',
      reason: `${model.name} does not take ${video.format} videos (it takes ${model.videoFormats.join(', ')})`,
    };
  }
  if (video.bytes > model.videoMaxBytes) {
    return {
      code: 'too-large',
      reason: `video of ${video.bytes} bytes is over ${model.name}'s limit of ${model.videoMaxBytes}`,
    };
  }
  return undefined;
}

function textProblem(text: string): Omit<Rejection, 'source'> | undefined {
  if (text.trim().length === 0)
    return { code: 'empty-text', reason: text.length === 0 ? 'empty text' : 'text of only whitespace' };
  return undefined;
}

interface Limits {
  readonly maxElements: number;
  readonly maxImages: number;
  readonly maxVideos: number;
  /** Per-request token cap (Infinity when the model's limit is per text). */
  readonly maxRequestTokens: number;
  /** Per-text (chunk) token cap. */
  readonly maxTextTokens: number;
  /** Tokens each text element costs toward a per-request cap beyond its own (the template). */
  readonly templateMargin: number;
  readonly maxBodyBytes: number;
  /** Bytes of a body with no elements. */
  readonly baseBodyBytes: number;
}

function limitsOf(opts: PlanOptions): Limits {
  const { model } = opts;
  const margin = opts.tokenMargin ?? TEMPLATE_TOKEN_MARGIN;
  const modelTextCap = model.textTokenLimit - margin;
  const maxTextTokens = Math.min(modelTextCap, opts.chunkTokens ?? modelTextCap);
  if (maxTextTokens < 4) throw new RangeError(`chunk size of ${maxTextTokens} tokens is too small (minimum 4)`);
  const emptyBody: ApiRequestBody = { model: model.name, input: { contents: [] }, parameters: requestParameters(opts) };
  return {
    maxElements: model.maxElements ?? Infinity,
    maxImages: model.maxImagesPerRequest ?? Infinity,
    maxVideos: model.maxVideosPerRequest ?? Infinity,
    maxRequestTokens: model.textLimitScope === 'per-request' ? model.textTokenLimit : Infinity,
    maxTextTokens,
    templateMargin: margin,
    maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    baseBodyBytes: utf8Bytes(emptyBody),
  };
}

/** How the planner chunks texts under `opts`: the chunk size and the overlap it uses. */
export function textChunking(opts: PlanOptions): TextChunking {
  return chunkingOf(opts, limitsOf(opts));
}

function chunkingOf(opts: PlanOptions, limits: Limits): TextChunking {
  return {
    maxTokens: limits.maxTextTokens,
    overlap: Math.min(opts.chunkOverlap ?? 0, Math.floor(limits.maxTextTokens / 2)),
  };
}

type Planned = { input: PlannedInput } | { rejection: Rejection };

/** Turns one prepared input into planned elements (several for a split text) or a rejection. */
function expand(input: PreparedInput, opts: PlanOptions, limits: Limits, tokens: TokenCounter): Planned[] {
  const { model } = opts;
  const reject = (r: Omit<Rejection, 'source'> | undefined): Planned[] | undefined =>
    r ? [{ rejection: { source: input.source, ...r } }] : undefined;
  const countsImages = model.imageTokensCountTowardLimit;
  const base = {
    source: input.source,
    kind: input.kind,
    chunk: 0,
    chunkCount: 1,
    videos: 0,
    images: 0,
    textTokens: 0,
    limitTokens: 0,
    usageTokens: 0,
  };

  switch (input.kind) {
    case 'text': {
      const bad = reject(textProblem(input.text));
      if (bad) return bad;
      // A chunk of only whitespace would be refused by the API and means nothing: drop it.
      const chunking = chunkingOf(opts, limits);
      const made =
        input.chunks?.maxTokens === chunking.maxTokens && input.chunks.overlap === chunking.overlap
          ? input.chunks.list
          : undefined;
      const chunks = (
        made ??
        (input.tokens <= limits.maxTextTokens
          ? [{ text: input.text, tokens: input.tokens, charStart: 0, charEnd: input.text.length }]
          : tokens.split(input.text, chunking.maxTokens, chunking.overlap))
      ).filter((c) => c.text.trim().length > 0);
      return chunks.map((c, index) => ({
        input: {
          ...base,
          chunk: index,
          chunkCount: chunks.length,
          charStart: c.charStart,
          charEnd: c.charEnd,
          content: c.text,
          textTokens: c.tokens,
          limitTokens: c.tokens + limits.templateMargin,
          usageTokens: c.tokens,
          bodyBytes: utf8Bytes(c.text),
        },
      }));
    }
    case 'image': {
      const bad = reject(imageProblem(model, input.image));
      if (bad) return bad;
      const content = { image: imageContent(input.image) };
      const pixels = imageTokens(input.image.width, input.image.height);
      const limitTokens = countsImages ? pixels : 0;
      return [
        {
          input: {
            ...base,
            content,
            images: 1,
            limitTokens,
            usageTokens: pixels,
            bodyBytes: imageBodyBytes(input.image) + '{"image":}'.length,
          },
        },
      ];
    }
    case 'video': {
      const bad = reject(videoProblem(model, input.video));
      if (bad) return bad;
      const content = { video: input.video.url };
      return [
        {
          input: {
            ...base,
            content,
            videos: 1,
            usageTokens: videoTokensEstimate(input.video.bytes, opts.fps),
            bodyBytes: utf8Bytes(content),
          },
        },
      ];
    }
    case 'fused': {
      if (!model.fused)
        return reject({ code: 'modality-not-supported', reason: `${model.name} has no fused embeddings` })!;
      if (!input.text && !input.image && !input.video)
        return reject({ code: 'empty-group', reason: 'fused input with no parts' })!;
      const bad =
        (input.text && textProblem(input.text.text)) ||
        (input.image && imageProblem(model, input.image)) ||
        (input.video && videoProblem(model, input.video));
      if (bad) return reject(bad)!;
      if (input.text && input.text.tokens > limits.maxTextTokens) {
        return reject({
          code: 'text-too-long',
          reason: `fused text of ${input.text.tokens} tokens is over the ${limits.maxTextTokens}-token limit`,
        })!;
      }
      const content: { text?: string; image?: string; video?: string } = {};
      if (input.text) content.text = input.text.text;
      if (input.image) content.image = imageContent(input.image);
      if (input.video) content.video = input.video.url;
      const textTokens = input.text?.tokens ?? 0;
      const pixels = input.image ? imageTokens(input.image.width, input.image.height) : 0;
      const imageTok = countsImages ? pixels : 0;
      return [
        {
          input: {
            ...base,
            content,
            textTokens,
            limitTokens: (input.text ? textTokens + limits.templateMargin : 0) + imageTok,
            usageTokens: textTokens + pixels + (input.video ? videoTokensEstimate(input.video.bytes, opts.fps) : 0),
            images: input.image ? 1 : 0,
            videos: input.video ? 1 : 0,
            bodyBytes: utf8Bytes(content),
          },
        },
      ];
    }
    case 'multi_images': {
      if (model.multiImagesMax === 0)
        return reject({ code: 'modality-not-supported', reason: `${model.name} has no multi_images` })!;
      if (input.images.length === 0)
        return reject({ code: 'empty-group', reason: 'multi_images group with no images' })!;
      if (input.images.length > model.multiImagesMax) {
        return reject({
          code: 'too-many-images',
          reason: `multi_images group of ${input.images.length} images is over ${model.name}'s ${model.multiImagesMax}`,
        })!;
      }
      for (const image of input.images) {
        const bad = reject(imageProblem(model, image));
        if (bad) return bad;
      }
      const content = { multi_images: input.images.map(imageContent) };
      const pixels = input.images.reduce((s, i) => s + imageTokens(i.width, i.height), 0);
      const limitTokens = countsImages ? pixels : 0;
      return [
        {
          input: {
            ...base,
            content,
            images: input.images.length,
            limitTokens,
            usageTokens: pixels,
            bodyBytes: utf8Bytes(content),
          },
        },
      ];
    }
  }
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
