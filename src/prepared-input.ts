/**
 * What the planner takes: an object's content prepared for the API (prepare.ts makes them),
 * text with its tokens (and chunks made beforehand), images with their payload, videos by URL.
 */
import type { ImageFormat, VideoFormat } from './models.js';
import type { TextChunk } from './tokens.js';

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
  /** Its length from its header, when its first bytes hold it (`videoHeadSeconds`): the token estimate uses it. */
  readonly seconds?: number;
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
