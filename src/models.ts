/**
 * The model catalog: every limit of the multimodal embedding API as data.
 *
 * Values follow the provider's seed page (see ../shared/reference/dashscope-contract.md).
 * Where the provider's own pages disagree, the seed value (or the stricter one) is the
 * default, and every field can be overridden per model from configuration
 * (`MODEL_OVERRIDES` / `--model-overrides`), because the provider changes these limits
 * between snapshots. The planner and the simulator read the same resolved catalog, so
 * an override moves both at once.
 */
import { z } from 'zod';
import { ConfigError } from './errors.js';

export const IMAGE_FORMATS = [
  'jpeg',
  'png',
  'webp',
  'bmp',
  'tiff',
  'ico',
  'dib',
  'icns',
  'sgi',
  'gif',
  'heic',
  'avif',
] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

export const VIDEO_FORMATS = ['mp4', 'mpeg', 'avi', 'mov', 'mpg', 'webm', 'flv', 'mkv'] as const;
export type VideoFormat = (typeof VIDEO_FORMATS)[number];

/** Whether a model's text limit applies to each text, or to the sum of a request's texts. */
export type TextLimitScope = 'per-text' | 'per-request';

export interface ModelSpec {
  readonly name: string;
  /** Accepted `dimension` values; the first entry is not special, `defaultDimension` is. */
  readonly dimensions: readonly number[];
  readonly defaultDimension: number;
  /** false: the API refuses the `dimension` parameter (the vector size is fixed). */
  readonly acceptsDimension: boolean;
  readonly textTokenLimit: number;
  readonly textLimitScope: TextLimitScope;
  /** Elements (contents entries) per request; null means no count limit. */
  readonly maxElements: number | null;
  /** Images per request (a multi_images element counts each of its images); null: none. */
  readonly maxImagesPerRequest: number | null;
  /** Videos per request; null: no count limit. */
  readonly maxVideosPerRequest: number | null;
  readonly imageMaxBytes: number;
  readonly imageFormats: readonly ImageFormat[];
  readonly videoMaxBytes: number;
  readonly videoFormats: readonly VideoFormat[];
  /** Images in one `multi_images` element; 0 when the model has no multi_images. */
  readonly multiImagesMax: number;
  /** Several modalities in one element give one fused vector. */
  readonly fused: boolean;
  /** Separate elements give separate vectors (false for fused-only models). */
  readonly independent: boolean;
  /** Whether image tokens count toward a per-request text limit (undocumented: default false). */
  readonly imageTokensCountTowardLimit: boolean;
  /** USD per million input tokens. */
  readonly priceTextPerMTokens: number;
  readonly priceImagePerMTokens: number;
  /** Documented requests and input tokens per minute (Beijing); null when not stated. */
  readonly rpm: number | null;
  readonly tpm: number | null;
  /** Where a value is an assumption rather than documented, for the README and `models`. */
  readonly notes: readonly string[];
}

const MB = 1_000_000;

const QWEN3_IMAGE_FORMATS: readonly ImageFormat[] = ['jpeg', 'png', 'webp', 'bmp', 'tiff', 'ico', 'dib', 'icns', 'sgi'];
const TONGYI_IMAGE_FORMATS: readonly ImageFormat[] = ['jpeg', 'png', 'bmp'];
const TONGYI_VIDEO_FORMATS: readonly VideoFormat[] = ['mp4', 'mpeg', 'avi', 'mov', 'mpg', 'webm', 'flv', 'mkv'];

const tongyi = {
  acceptsDimension: true,
  textTokenLimit: 1024,
  textLimitScope: 'per-request',
  maxElements: null,
  maxImagesPerRequest: null,
  maxVideosPerRequest: null,
  imageMaxBytes: 3 * MB,
  imageFormats: TONGYI_IMAGE_FORMATS,
  videoMaxBytes: 10 * MB,
  videoFormats: TONGYI_VIDEO_FORMATS,
  multiImagesMax: 8,
  fused: false,
  independent: true,
  imageTokensCountTowardLimit: false,
  rpm: 600,
  tpm: 200_000,
} as const;

export const BUILTIN_MODELS: Readonly<Record<string, ModelSpec>> = Object.freeze({
  'qwen3-vl-embedding': {
    name: 'qwen3-vl-embedding',
    dimensions: [2560, 2048, 1536, 1024, 768, 512, 256],
    defaultDimension: 2560,
    acceptsDimension: true,
    textTokenLimit: 32_000,
    textLimitScope: 'per-text',
    maxElements: 20,
    maxImagesPerRequest: 1,
    maxVideosPerRequest: 1,
    imageMaxBytes: 5 * MB,
    imageFormats: QWEN3_IMAGE_FORMATS,
    videoMaxBytes: 50 * MB,
    videoFormats: ['mp4', 'avi', 'mov'],
    multiImagesMax: 0,
    fused: true,
    independent: true,
    imageTokensCountTowardLimit: false,
    priceTextPerMTokens: 0.1,
    priceImagePerMTokens: 0.258,
    rpm: 1200,
    tpm: 600_000,
    notes: [
      'a newer provider page allows 5 images of 10 MB and 1 video per request: override maxImagesPerRequest/imageMaxBytes',
      'videos per request: not on the seed page; 1 assumed (the newer page)',
    ],
  },
  'tongyi-embedding-vision-plus': {
    ...tongyi,
    name: 'tongyi-embedding-vision-plus',
    dimensions: [1152, 1024, 512, 256, 128, 64],
    defaultDimension: 1152,
    priceTextPerMTokens: 0.09,
    priceImagePerMTokens: 0.09,
    notes: [
      'snapshots -2026-03-06 cap a request at 20 elements and 64 images, images up to 10 MB: override to use them',
      'whether image tokens count toward the 1,024-token cap is undocumented: text only by default',
    ],
  },
  'tongyi-embedding-vision-flash': {
    ...tongyi,
    name: 'tongyi-embedding-vision-flash',
    dimensions: [768, 512, 256, 128, 64],
    defaultDimension: 768,
    priceTextPerMTokens: 0.09,
    priceImagePerMTokens: 0.03,
    notes: ['TPM 200,000 is assumed (the rate-limit page does not list flash)'],
  },
  'multimodal-embedding-v1': {
    name: 'multimodal-embedding-v1',
    dimensions: [1024],
    defaultDimension: 1024,
    acceptsDimension: false,
    textTokenLimit: 512,
    textLimitScope: 'per-text',
    maxElements: 20,
    maxImagesPerRequest: 1,
    maxVideosPerRequest: 1,
    imageMaxBytes: 3 * MB,
    imageFormats: TONGYI_IMAGE_FORMATS,
    videoMaxBytes: 10 * MB,
    videoFormats: ['mp4', 'avi', 'mov'],
    multiImagesMax: 0,
    fused: false,
    independent: true,
    imageTokensCountTowardLimit: false,
    priceTextPerMTokens: 0,
    priceImagePerMTokens: 0,
    rpm: 120,
    tpm: null,
    notes: [
      'the overview says "max 8 images"; the per-request row says 1 image: the stricter is the default',
      'image and video formats are not listed on the seed page: JPG/PNG/BMP and MP4/AVI/MOV assumed',
      'free trial: prices are 0',
    ],
  },
  'qwen2.5-vl-embedding': {
    name: 'qwen2.5-vl-embedding',
    dimensions: [1024],
    defaultDimension: 1024,
    acceptsDimension: false,
    textTokenLimit: 32_000,
    textLimitScope: 'per-text',
    maxElements: 20,
    maxImagesPerRequest: 1,
    maxVideosPerRequest: 1,
    imageMaxBytes: 5 * MB,
    imageFormats: QWEN3_IMAGE_FORMATS,
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
    notes: [
      'fused-only: every element is one fused input; the seed page gives no limits, dimensions or prices, so those of qwen3-vl-embedding are assumed and the dimension is fixed at 1024',
    ],
  },
} satisfies Record<string, ModelSpec>);

export const MODEL_NAMES = Object.keys(BUILTIN_MODELS);

const positiveInt = z.number().int().positive();
const overrideSchema = z
  .object({
    dimensions: z.array(positiveInt).nonempty(),
    defaultDimension: positiveInt,
    acceptsDimension: z.boolean(),
    textTokenLimit: positiveInt,
    textLimitScope: z.enum(['per-text', 'per-request']),
    maxElements: positiveInt.nullable(),
    maxImagesPerRequest: positiveInt.nullable(),
    maxVideosPerRequest: positiveInt.nullable(),
    imageMaxBytes: positiveInt,
    imageFormats: z.array(z.enum(IMAGE_FORMATS)),
    videoMaxBytes: positiveInt,
    videoFormats: z.array(z.enum(VIDEO_FORMATS)),
    multiImagesMax: z.number().int().min(0),
    fused: z.boolean(),
    independent: z.boolean(),
    imageTokensCountTowardLimit: z.boolean(),
    priceTextPerMTokens: z.number().min(0),
    priceImagePerMTokens: z.number().min(0),
    rpm: positiveInt.nullable(),
    tpm: positiveInt.nullable(),
  })
  // exact: a key that is present holds a value (JSON has no undefined), so a spread over a spec keeps it whole
  .exactPartial()
  .strict();

export type ModelOverride = z.infer<typeof overrideSchema>;
export type ModelOverrides = Readonly<Record<string, ModelOverride>>;

/**
 * Parse the `MODEL_OVERRIDES` JSON (`{"model": {"field": value}}`), naming the bad field.
 * `source` names where the text came from, for the error message.
 */
export function parseModelOverrides(text: string | undefined, source = 'MODEL_OVERRIDES'): ModelOverrides {
  if (text === undefined || text.trim() === '') return {};
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(source, `is not valid JSON (${(err as Error).message})`);
  }
  const parsed = z.record(z.string(), overrideSchema).safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? issue.path.join('.') : '';
    throw new ConfigError(source, `${where}: ${issue?.message ?? 'invalid'}`);
  }
  // the JSON's own keys, read before the schema: zod builds its record with plain assignments,
  // so a "__proto__" key would become the record's prototype and vanish from its keys
  for (const name of typeof raw === 'object' && raw !== null ? Object.keys(raw) : []) {
    if (!isModelName(name))
      throw new ConfigError(source, `names unknown model "${name}" (known: ${MODEL_NAMES.join(', ')})`);
  }
  return parsed.data;
}

/**
 * True for a model of the catalog. An own property: a name such as `constructor` or
 * `__proto__`, which every object inherits, is an unknown model like any other.
 */
export function isModelName(name: string): boolean {
  return Object.hasOwn(BUILTIN_MODELS, name);
}

/** The catalog entry for `name` with the overrides applied; throws a ConfigError naming the model. */
export function resolveModel(name: string, overrides: ModelOverrides = {}): ModelSpec {
  const base = isModelName(name) ? BUILTIN_MODELS[name] : undefined;
  if (!base) throw new ConfigError('model', `"${name}" is not a known model (known: ${MODEL_NAMES.join(', ')})`);
  const spec: ModelSpec = { ...base, ...(Object.hasOwn(overrides, name) ? overrides[name] : {}) };
  if (!spec.dimensions.includes(spec.defaultDimension)) {
    throw new ConfigError('model', `${name}: defaultDimension ${spec.defaultDimension} is not one of its dimensions`);
  }
  return Object.freeze(spec);
}

/** The dimension to use: the requested one if the model takes it, else the model's default. */
export function resolveDimension(spec: ModelSpec, requested?: number): number {
  if (requested === undefined) return spec.defaultDimension;
  if (!spec.dimensions.includes(requested)) {
    throw new ConfigError(
      'dimension',
      `${requested} is not a dimension of ${spec.name} (it takes ${spec.dimensions.join(', ')})`,
    );
  }
  return requested;
}

/** Estimated cost in USD of a usage, from the model's price table. */
export function estimateCost(spec: ModelSpec, textTokens: number, imageTokens: number): number {
  return (textTokens * spec.priceTextPerMTokens + imageTokens * spec.priceImagePerMTokens) / 1_000_000;
}
