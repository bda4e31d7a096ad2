/**
 * The `usage` of an accepted request. Text tokens come from the Qwen tokenizer (counted
 * during validation, without the template tokens the limit check adds: the provider's
 * page bills those too, the simulator does not yet), image tokens from the contract's
 * patch rule (`patchTokens`, contract.ts), and
 * video tokens from a rule of our own, because the provider publishes none:
 *
 *   seconds = the MP4/MOV `mvhd` duration when the file has one,
 *             else ceil(bytes / bytesPerSecond)            (default 262,144 B/s, ~2 Mbit/s)
 *   frames  = min(maxFrames, max(1, round(fps * seconds))) (default max 64 frames)
 *   tokens  = frames * tokensPerFrame                       (default 256)
 */
import type { ApiUsage } from '../api.js';
import { patchTokens } from './contract.js';
import type { VideoTokenRule } from './options.js';
import type { ValidRequest } from './validate.js';

export interface UsageCounts {
  readonly textTokens: number;
  /** Image and video tokens. */
  readonly imageTokens: number;
  readonly images: number;
  readonly videos: number;
  readonly durationSeconds: number;
}

function ascii(bytes: Uint8Array, at: number): string {
  return String.fromCharCode(bytes[at] ?? 0, bytes[at + 1] ?? 0, bytes[at + 2] ?? 0, bytes[at + 3] ?? 0);
}

/** Duration in seconds from an ISO-BMFF `moov/mvhd` box, or undefined when there is none. */
export function mp4DurationSeconds(bytes: Uint8Array): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const walk = (start: number, end: number, depth: number): number | undefined => {
    let at = start;
    while (at + 8 <= end) {
      let size = view.getUint32(at);
      const type = ascii(bytes, at + 4);
      let header = 8;
      if (size === 1) {
        if (at + 16 > end) return undefined;
        size = Number(view.getBigUint64(at + 8));
        header = 16;
      } else if (size === 0) {
        size = end - at;
      }
      if (size < header || at + size > end) return undefined;
      if (type === 'moov' && depth === 0) return walk(at + header, at + size, 1);
      if (type === 'mvhd' && depth === 1) {
        const p = at + header;
        const v1 = bytes[p] === 1;
        if (p + (v1 ? 32 : 20) > at + size) return undefined;
        const timescale = view.getUint32(p + (v1 ? 20 : 12));
        const duration = v1 ? Number(view.getBigUint64(p + 24)) : view.getUint32(p + 16);
        return timescale > 0 ? duration / timescale : undefined;
      }
      at += size;
    }
    return undefined;
  };
  return walk(0, bytes.length, 0);
}

export function videoSeconds(bytes: Uint8Array, rule: VideoTokenRule): number {
  return mp4DurationSeconds(bytes) ?? Math.ceil(bytes.length / rule.bytesPerSecond);
}

export function videoTokens(seconds: number, fps: number, rule: VideoTokenRule): number {
  const frames = Math.min(rule.maxFrames, Math.max(1, Math.round(fps * seconds)));
  return frames * rule.tokensPerFrame;
}

export function usageCounts(request: ValidRequest, rule: VideoTokenRule): UsageCounts {
  let textTokens = 0;
  let imageTok = 0;
  let images = 0;
  let videos = 0;
  let seconds = 0;
  for (const e of request.elements) {
    textTokens += e.textTokens;
    for (const img of e.images) {
      images++;
      imageTok += patchTokens(img.width, img.height);
    }
    if (e.video) {
      const s = videoSeconds(e.video.bytes, rule);
      videos++;
      seconds += s;
      imageTok += videoTokens(s, request.fps, rule);
    }
  }
  return { textTokens, imageTokens: imageTok, images, videos, durationSeconds: seconds };
}

/** The response's `usage`: `input_tokens` are text tokens, as on the provider's page. */
export function usageBody(c: UsageCounts): ApiUsage {
  const usage: ApiUsage = {
    input_tokens: c.textTokens,
    image_tokens: c.imageTokens,
    image_count: c.images,
    input_tokens_details: { text_tokens: c.textTokens, image_tokens: c.imageTokens },
    total_tokens: c.textTokens + c.imageTokens,
  };
  if (c.videos > 0) usage.duration = Math.round(c.durationSeconds);
  return usage;
}
