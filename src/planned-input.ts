/**
 * One prepared input as planned elements, each with what it costs against every limit:
 * a text split into token-bounded chunks that remember their place, an image or video
 * checked against the model's formats and byte limits, or a rejection with the reason.
 */
import type { ApiContent } from './api.js';
import { imageShapeProblem, imageTokens, videoTokensEstimate } from './media.js';
import type { ModelSpec } from './models.js';
import type { Limits, PlanOptions } from './plan-limits.js';
import { chunkingOf } from './plan-limits.js';
import type { InputKind, PreparedImage, PreparedInput, PreparedVideo } from './prepared-input.js';
import { imageBodyBytes, imageContent, utf8Bytes } from './request-body.js';
import type { TokenCounter } from './tokens.js';

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

export type Planned = { input: PlannedInput } | { rejection: Rejection };

/** Turns one prepared input into planned elements (several for a split text) or a rejection. */
export function expand(input: PreparedInput, opts: PlanOptions, limits: Limits, tokens: TokenCounter): Planned[] {
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
            usageTokens: videoTokensEstimate(input.video.bytes, opts.fps, input.video.seconds),
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
            usageTokens:
              textTokens +
              pixels +
              (input.video ? videoTokensEstimate(input.video.bytes, opts.fps, input.video.seconds) : 0),
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
