/**
 * The simulator's settings: what a caller may pass (everything but the key optional),
 * the defaults, and validation that names the bad field. Faults, latency and rate
 * limits can also be patched while it runs (`configure`, `POST /_sim/config`).
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import type { ModelOverrides, ModelSpec } from '../models.js';
import { BODY_CAP_BYTES, CONTRACT_MODEL_NAMES, DATA_URI_CAP_BYTES } from './contract.js';

export interface RateLimit {
  /** Requests per minute (also enforced per second as RPM/60); null: unlimited. */
  readonly rpm: number | null;
  /** Input tokens (text + image + video) per minute; null: unlimited. */
  readonly tpm: number | null;
}

/**
 * `documented`: each model's catalog `rpm`/`tpm` (model overrides included); `off`: no
 * limits; a record: per-model values over the documented ones (missing fields and
 * models keep theirs).
 */
export type RateLimitSetting = 'documented' | 'off' | Readonly<Record<string, Partial<RateLimit>>>;

export interface LatencyOptions {
  readonly fixedMs: number;
  readonly perInputMs: number;
  /** Uniform extra delay in [0, jitterMs), drawn from the seeded generator. */
  readonly jitterMs: number;
}

export interface FaultOptions {
  readonly seed: number;
  /** Probabilities per request (their sum at most 1). */
  readonly error500Rate: number;
  readonly error503Rate: number;
  readonly burst429Rate: number;
  /** Requests answered 429 Throttling.BurstRate once a burst starts (the drawing one included). */
  readonly burst429Length: number;
  readonly hangRate: number;
  /** How long a hung request stalls before its socket is destroyed. */
  readonly hangMs: number;
  readonly dropRate: number;
}

/**
 * Video tokens, which the provider does not publish: the duration is the MP4/MOV
 * `mvhd` duration when the file has one, else bytes / bytesPerSecond rounded up; frames
 * = max(1, round(fps * seconds)) capped at maxFrames; tokensPerFrame tokens a frame.
 */
export interface VideoTokenRule {
  readonly bytesPerSecond: number;
  readonly maxFrames: number;
  readonly tokensPerFrame: number;
}

export interface SimulatorOptions {
  readonly apiKey: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly host: string;
  readonly modelOverrides: ModelOverrides;
  /** Larger bodies get 413 BadRequest.TooLarge (the compatible gateway's cap). */
  readonly maxBodyBytes: number;
  /** Image data URIs longer than this are refused (the provider's 10 MiB). */
  readonly maxDataUriBytes: number;
  readonly rateLimits: RateLimitSetting;
  readonly latency: LatencyOptions;
  readonly faults: FaultOptions;
  /** A URL that has not downloaded in this time is a failed download. */
  readonly downloadTimeoutMs: number;
  readonly videoTokenRule: VideoTokenRule;
  /**
   * How many of the latest requests on the API paths to keep in the request log
   * (`requests()`, `GET /_sim/requests`): method, path, headers with the key redacted,
   * body with long strings abbreviated, and the answer. 0: no log.
   */
  readonly captureRequests: number;
  /**
   * Download media URLs of loopback and private hosts. The provider cannot (it fetches
   * from its own network), so by default the simulator refuses them as it would
   * (400 Failed to download multimodal content); tests of URL mode against a local store
   * set it. @defaultValue false
   */
  readonly allowPrivateUrls: boolean;
}

export interface SimulatorPatch {
  readonly rateLimits?: RateLimitSetting;
  readonly latency?: Partial<LatencyOptions>;
  readonly faults?: Partial<FaultOptions>;
}

export type SimulatorOptionsInput = { readonly apiKey: string } & Partial<
  Omit<SimulatorOptions, 'apiKey' | 'latency' | 'faults' | 'videoTokenRule'>
> & {
    readonly latency?: Partial<LatencyOptions>;
    readonly faults?: Partial<FaultOptions>;
    readonly videoTokenRule?: Partial<VideoTokenRule>;
  };

export const DEFAULT_LATENCY: LatencyOptions = { fixedMs: 0, perInputMs: 0, jitterMs: 0 };
export const DEFAULT_FAULTS: FaultOptions = {
  seed: 1,
  error500Rate: 0,
  error503Rate: 0,
  burst429Rate: 0,
  burst429Length: 3,
  hangRate: 0,
  hangMs: 600_000,
  dropRate: 0,
};
export const DEFAULT_VIDEO_TOKEN_RULE: VideoTokenRule = { bytesPerSecond: 262_144, maxFrames: 64, tokensPerFrame: 256 };
export const DATA_URI_MAX_BYTES = DATA_URI_CAP_BYTES;

const nonNegative = z.number().finite().min(0);
const rate = z.number().min(0).max(1);
const limitValue = z.number().int().positive().nullable();
const latencySchema = z
  .object({ fixedMs: nonNegative, perInputMs: nonNegative, jitterMs: nonNegative })
  .exactPartial()
  .strict();
const faultsSchema = z
  .object({
    seed: z.number().int(),
    error500Rate: rate,
    error503Rate: rate,
    burst429Rate: rate,
    burst429Length: z.number().int().min(1),
    hangRate: rate,
    hangMs: nonNegative,
    dropRate: rate,
  })
  .exactPartial()
  .strict();
const rateLimitsSchema = z.union([
  z.literal('documented'),
  z.literal('off'),
  z.record(z.string(), z.object({ rpm: limitValue, tpm: limitValue }).exactPartial().strict()),
]);
const patchSchema = z
  .object({ rateLimits: rateLimitsSchema, latency: latencySchema, faults: faultsSchema })
  .partial()
  .strict();
const optionsSchema = z
  .object({
    apiKey: z.string().min(1),
    port: z.number().int().min(0).max(65535),
    host: z.string().min(1),
    modelOverrides: z.record(z.string(), z.unknown()),
    maxBodyBytes: z.number().int().positive(),
    maxDataUriBytes: z.number().int().positive(),
    downloadTimeoutMs: z.number().int().positive(),
    captureRequests: z.number().int().min(0),
    allowPrivateUrls: z.boolean(),
    videoTokenRule: z
      .object({
        bytesPerSecond: z.number().int().positive(),
        maxFrames: z.number().int().positive(),
        tokensPerFrame: z.number().int().positive(),
      })
      .exactPartial()
      .strict(),
  })
  .extend(patchSchema.shape)
  .partial()
  .required({ apiKey: true })
  .strict();

function check<T>(schema: z.ZodType<T>, value: unknown, source: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  throw new ConfigError(source, `${where}${issue?.message ?? 'invalid'}`);
}

function checkRateLimitModels(setting: RateLimitSetting, source: string): void {
  if (typeof setting === 'string') return;
  for (const name of Object.keys(setting)) {
    if (!CONTRACT_MODEL_NAMES.includes(name))
      throw new ConfigError(
        source,
        `rateLimits names unknown model "${name}" (known: ${CONTRACT_MODEL_NAMES.join(', ')})`,
      );
  }
}

function checkFaultTotal(f: FaultOptions, source: string): void {
  const total = f.error500Rate + f.error503Rate + f.burst429Rate + f.hangRate + f.dropRate;
  if (total > 1 + 1e-9) throw new ConfigError(source, `fault rates add up to ${total}, over 1`);
}

/** Full options from a caller's partial ones; throws a ConfigError naming the bad field. */
export function resolveSimulatorOptions(input: SimulatorOptionsInput, source = 'simulator options'): SimulatorOptions {
  const v = check(optionsSchema, input, source);
  const rateLimits = v.rateLimits ?? 'documented';
  checkRateLimitModels(rateLimits, source);
  const faults = { ...DEFAULT_FAULTS, ...v.faults };
  checkFaultTotal(faults, source);
  return {
    apiKey: v.apiKey,
    port: v.port ?? 0,
    host: v.host ?? '127.0.0.1',
    // Already parsed by parseModelOverrides (or typed by the caller); resolveModel applies it.
    modelOverrides: input.modelOverrides ?? {},
    maxBodyBytes: v.maxBodyBytes ?? BODY_CAP_BYTES,
    maxDataUriBytes: v.maxDataUriBytes ?? DATA_URI_MAX_BYTES,
    rateLimits,
    latency: { ...DEFAULT_LATENCY, ...v.latency },
    faults,
    downloadTimeoutMs: v.downloadTimeoutMs ?? 30_000,
    videoTokenRule: { ...DEFAULT_VIDEO_TOKEN_RULE, ...v.videoTokenRule },
    captureRequests: v.captureRequests ?? 0,
    allowPrivateUrls: v.allowPrivateUrls ?? false,
  };
}

/** Options with a run-time patch applied; throws a ConfigError naming the bad field. */
export function applyPatch(options: SimulatorOptions, patch: unknown, source = 'simulator config'): SimulatorOptions {
  const p = check(patchSchema, patch, source);
  const rateLimits = p.rateLimits ?? options.rateLimits;
  checkRateLimitModels(rateLimits, source);
  const faults = { ...options.faults, ...p.faults };
  checkFaultTotal(faults, source);
  return { ...options, rateLimits, faults, latency: { ...options.latency, ...p.latency } };
}

/** The limits in force for a model under a setting. */
export function rateLimitFor(setting: RateLimitSetting, spec: ModelSpec): RateLimit {
  if (setting === 'off') return { rpm: null, tpm: null };
  const documented: RateLimit = { rpm: spec.rpm, tpm: spec.tpm };
  if (setting === 'documented') return documented;
  const own = setting[spec.name];
  return {
    rpm: own?.rpm === undefined ? documented.rpm : own.rpm,
    tpm: own?.tpm === undefined ? documented.tpm : own.tpm,
  };
}
