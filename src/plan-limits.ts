/**
 * A plan's options and the limits they come to for the model: elements, images, videos and
 * tokens per request, the text chunk size and the body cap.
 */
import type { ApiRequestBody } from './api.js';
import type { TextChunking } from './prepared-input.js';
import { requestParameters, utf8Bytes } from './request-body.js';
import type { RequestSettings } from './request-body.js';

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

export interface PlanOptions extends RequestSettings {
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
}

export interface Limits {
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

export function limitsOf(opts: PlanOptions): Limits {
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

export function chunkingOf(opts: PlanOptions, limits: Limits): TextChunking {
  return {
    maxTokens: limits.maxTextTokens,
    overlap: Math.min(opts.chunkOverlap ?? 0, Math.floor(limits.maxTextTokens / 2)),
  };
}
