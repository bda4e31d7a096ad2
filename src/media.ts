/**
 * Media facts from names and bytes: the format a key claims, the format and pixel size
 * the bytes really have, data URIs, and the documented image-token rule. Pure functions.
 */
import { imageSize } from 'image-size';
import type { ImageFormat, VideoFormat } from './models.js';

export type Modality = 'text' | 'image' | 'video';

// Maps, not object literals: an extension comes from a key, and `photo.constructor` must
// not find Object's constructor (a property every object literal inherits).
const IMAGE_EXTENSIONS: ReadonlyMap<string, ImageFormat> = new Map(
  Object.entries({
    jpg: 'jpeg',
    jpeg: 'jpeg',
    jpe: 'jpeg',
    png: 'png',
    webp: 'webp',
    bmp: 'bmp',
    dib: 'dib',
    tif: 'tiff',
    tiff: 'tiff',
    ico: 'ico',
    icns: 'icns',
    sgi: 'sgi',
    rgb: 'sgi',
    rgba: 'sgi',
    gif: 'gif',
    heic: 'heic',
    heif: 'heic',
    avif: 'avif',
  } satisfies Record<string, ImageFormat>),
);

const VIDEO_EXTENSIONS: ReadonlyMap<string, VideoFormat> = new Map(
  Object.entries({
    mp4: 'mp4',
    m4v: 'mp4',
    mpeg: 'mpeg',
    mpg: 'mpg',
    avi: 'avi',
    mov: 'mov',
    qt: 'mov',
    webm: 'webm',
    flv: 'flv',
    mkv: 'mkv',
  } satisfies Record<string, VideoFormat>),
);

const TEXT_EXTENSIONS = new Set([
  'txt',
  'md',
  'markdown',
  'csv',
  'tsv',
  'json',
  'jsonl',
  'html',
  'htm',
  'xml',
  'rst',
  'log',
  'yaml',
  'yml',
]);

export function extensionOf(key: string): string {
  const base = key.slice(key.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot <= 0 ? '' : base.slice(dot + 1).toLowerCase();
}

/** What a key (and optionally its Content-Type) says an object is; undefined: not a supported kind. */
export function classifyKey(
  key: string,
  contentType?: string,
):
  | { modality: 'text' }
  | { modality: 'image'; format: ImageFormat }
  | { modality: 'video'; format: VideoFormat }
  | undefined {
  const ext = extensionOf(key);
  const image = IMAGE_EXTENSIONS.get(ext);
  if (image) return { modality: 'image', format: image };
  const video = VIDEO_EXTENSIONS.get(ext);
  if (video) return { modality: 'video', format: video };
  if (TEXT_EXTENSIONS.has(ext)) return { modality: 'text' };
  if (ext === '' && contentType?.startsWith('text/')) return { modality: 'text' };
  return undefined;
}

export interface ImageFacts {
  readonly format: ImageFormat;
  readonly width: number;
  readonly height: number;
}

const SIZE_TYPES: ReadonlyMap<string, ImageFormat> = new Map(
  Object.entries({
    jpg: 'jpeg',
    png: 'png',
    webp: 'webp',
    bmp: 'bmp',
    tiff: 'tiff',
    ico: 'ico',
    cur: 'ico',
    icns: 'icns',
    gif: 'gif',
    heif: 'heic',
  } satisfies Record<string, ImageFormat>),
);

/** The real format and pixel size of image bytes, or a reason they are not a usable image. */
export function sniffImage(bytes: Uint8Array): ImageFacts | { error: string } {
  if (bytes.length === 0) return { error: 'zero-byte image' };
  // SGI: magic 0x01DA, then big-endian xsize at 6 and ysize at 8 (image-size does not know it).
  if (bytes.length >= 10 && bytes[0] === 0x01 && bytes[1] === 0xda) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return { format: 'sgi', width: view.getUint16(6), height: view.getUint16(8) };
  }
  try {
    const r = imageSize(bytes);
    const format = r.type ? SIZE_TYPES.get(r.type) : undefined;
    if (!format) return { error: `not a supported image (detected ${r.type ?? 'nothing'})` };
    if (!r.width || !r.height) return { error: 'image has no pixel size' };
    // EXIF orientations 5-8 rotate by 90 degrees: the API sees the rotated size.
    const rotated = (r.orientation ?? 1) >= 5;
    return { format, width: rotated ? r.height : r.width, height: rotated ? r.width : r.height };
  } catch {
    return { error: 'not an image (unrecognised bytes)' };
  }
}

/** The real container of video bytes from its magic numbers, or undefined. */
export function sniffVideo(bytes: Uint8Array): VideoFormat | undefined {
  const ascii = (from: number, to: number): string => Buffer.from(bytes.subarray(from, to)).toString('latin1');
  if (bytes.length >= 12 && ascii(4, 8) === 'ftyp') return ascii(8, 12) === 'qt  ' ? 'mov' : 'mp4';
  if (bytes.length >= 12 && ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'AVI ') return 'avi';
  if (bytes.length >= 4 && bytes[0] === 0x1a && bytes[1] === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3) {
    return ascii(0, Math.min(64, bytes.length)).includes('webm') ? 'webm' : 'mkv';
  }
  if (bytes.length >= 3 && ascii(0, 3) === 'FLV') return 'flv';
  if (
    bytes.length >= 4 &&
    bytes[0] === 0 &&
    bytes[1] === 0 &&
    bytes[2] === 1 &&
    (bytes[3] === 0xba || bytes[3] === 0xb3)
  )
    return 'mpeg';
  return undefined;
}

/** `data:image/{format};base64,...` as the API takes inline images. */
export function imageDataUri(format: ImageFormat, bytes: Uint8Array): string {
  return `data:image/${format};base64,${Buffer.from(bytes).toString('base64')}`;
}

/** Length of the data URI of `byteCount` bytes, without building it. */
export function dataUriLength(format: ImageFormat, byteCount: number): number {
  return `data:image/${format};base64,`.length + Math.ceil(byteCount / 3) * 4;
}

/**
 * Image tokens by the Qwen-VL rule the contract suggests (the provider publishes none):
 * scale the image into a budget of 4 to 1,800 patches of 32x32 pixels, keeping its
 * aspect ratio, then count the patches.
 */
export const IMAGE_PATCH = 32;
export const IMAGE_MIN_TOKENS = 4;
export const IMAGE_MAX_TOKENS = 1800;
export function imageTokens(width: number, height: number): number {
  const patches = (width * height) / (IMAGE_PATCH * IMAGE_PATCH);
  const scale =
    patches > IMAGE_MAX_TOKENS
      ? Math.sqrt(IMAGE_MAX_TOKENS / patches)
      : patches < IMAGE_MIN_TOKENS
        ? Math.sqrt(IMAGE_MIN_TOKENS / patches)
        : 1;
  const tokens = Math.floor((width * scale) / IMAGE_PATCH) * Math.floor((height * scale) / IMAGE_PATCH);
  return Math.min(IMAGE_MAX_TOKENS, Math.max(IMAGE_MIN_TOKENS, tokens));
}

/**
 * Tokens a video will cost, estimated before the request for the TPM budget (the
 * provider publishes no formula, and the worker reads only a video's first bytes):
 * its length from its size at an assumed 1 Mbit/s (a low bitrate, so the estimate
 * errs long), frames sampled at `fps` and capped at 64 as the provider caps them, and
 * 256 tokens a frame. The answer's `usage` corrects the budget afterwards.
 */
export const VIDEO_ESTIMATE = { bytesPerSecond: 125_000, maxFrames: 64, tokensPerFrame: 256 } as const;
/** `durationSeconds`: the length read from the video's header (`videoHeadSeconds`), used instead of the size's guess. */
export function videoTokensEstimate(bytes: number, fps = 1, durationSeconds?: number): number {
  const seconds =
    durationSeconds !== undefined ? durationSeconds : Math.max(1, Math.ceil(bytes / VIDEO_ESTIMATE.bytesPerSecond));
  const frames = Math.min(VIDEO_ESTIMATE.maxFrames, Math.max(1, Math.round(fps * seconds)));
  return frames * VIDEO_ESTIMATE.tokensPerFrame;
}

/**
 * A video's length (seconds) from the `moov/mvhd` box of an MP4 or MOV whose `moov` comes
 * before its media data (a "fast start" file, as most encoders and phones write them for
 * streaming), read from the file's first bytes. Undefined when those bytes do not reach
 * the box: no `moov` ahead of the data, a truncated head, a malformed box, or another
 * container. The `moov` itself may be longer than the head (its sample tables): only its
 * first child, `mvhd`, has to be inside.
 */
export function videoHeadSeconds(head: Uint8Array): number | undefined {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const type = (at: number): string => String.fromCharCode(...head.subarray(at + 4, at + 8));
  /** A box at `at`: its header's and its whole length (to `limit` when its size is 0: to the end). */
  const box = (at: number, limit: number): { header: number; size: number } | undefined => {
    if (at + 8 > head.length) return undefined;
    const size32 = view.getUint32(at);
    if (size32 === 1) {
      if (at + 16 > head.length) return undefined;
      return { header: 16, size: Number(view.getBigUint64(at + 8)) };
    }
    return { header: 8, size: size32 === 0 ? limit - at : size32 };
  };
  for (let at = 0; at + 8 <= head.length;) {
    const b = box(at, Number.MAX_SAFE_INTEGER);
    if (!b || b.size < b.header) return undefined;
    if (type(at) === 'moov') {
      const end = Math.min(head.length, at + b.size);
      for (let c = at + b.header; c + 8 <= end;) {
        const child = box(c, at + b.size);
        if (!child || child.size < child.header) return undefined;
        if (type(c) === 'mvhd') {
          const p = c + child.header;
          const v1 = head[p] === 1;
          if (p + (v1 ? 32 : 20) > Math.min(end, c + child.size)) return undefined;
          const timescale = view.getUint32(p + (v1 ? 20 : 12));
          const duration = v1 ? Number(view.getBigUint64(p + 24)) : view.getUint32(p + 16);
          return timescale > 0 && Number.isFinite(duration / timescale) ? duration / timescale : undefined;
        }
        c += child.size;
      }
      return undefined;
    }
    // the media data (or anything else) before the moov: its header is not in the head
    if (type(at) === 'mdat') return undefined;
    at += b.size;
  }
  return undefined;
}

/** The provider-wide rule for vision inputs: each side >= 10 px, aspect ratio <= 200:1. */
export function imageShapeProblem(width: number, height: number): string | undefined {
  if (width < 10 || height < 10) return `image side under 10 px (${width}x${height})`;
  if (Math.max(width, height) / Math.min(width, height) > 200) return `aspect ratio over 200:1 (${width}x${height})`;
  return undefined;
}
