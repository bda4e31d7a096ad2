/**
 * Every setting of a benchmark run, in one place, written into the results as they are.
 */
import { resolveModel } from '../src/models.js';
import type { ModelOverrides } from '../src/models.js';

export interface Settings {
  readonly quick: boolean;
  readonly latency: { readonly fixedMs: number; readonly perInputMs: number; readonly jitterMs: number };
  /** The request-bound model (scenarios 1, 3, 4, 5, 6) and the factor its documented RPM/TPM are scaled by. */
  readonly requestModel: string;
  readonly requestModelScale: number;
  /** MODEL_OVERRIDES given to the simulator and to every CLI process alike. */
  readonly modelOverrides: ModelOverrides;
  /** The token-bound model (scenario 2), at its documented limits. */
  readonly tokenModel: string;
  readonly workers: number;
  /** WORKER_CONCURRENCY of each worker. */
  readonly concurrency: number;
  readonly scaleSizes: readonly number[];
  /** Seconds after the first accepted request before a steady rate is measured. */
  readonly steadyWarmupS: number;
  readonly longTexts: number;
  /** Scenario 2 measures from its first accepted request for this long, then stops the workers. */
  readonly tokenRunS: number;
  readonly tokenWindowS: number;
  /** Scenario 2 stops its workers with SIGTERM (DRAIN_TIMEOUT_MS 2000) and kills them after this long. */
  readonly stopGraceS: number;
  readonly mixedObjects: number;
  readonly imageEvery: number;
  /** Size of the bucket the peers and our pipeline run on (one of scaleSizes). */
  readonly peersBucket: number;
  /** The sequential peer is stopped after this long (it runs at one object per request). */
  readonly sequentialSeconds: number;
  readonly langchain: {
    readonly batchSize: number;
    readonly textsPerRequest: number;
    readonly maxConcurrency: number;
    readonly maxRetries: number;
    readonly fetchConcurrency: number;
  };
  readonly limiterProbeS: number;
  /** Short texts of scenario 7 (pacing): 20 a request, so 300 requests and more a row. */
  readonly pacingTexts: number;
}

export function benchSettings(quick: boolean): Settings {
  const requestModel = 'qwen3-vl-embedding';
  const scale = 0.25;
  const documented = resolveModel(requestModel);
  const rpm = Math.round((documented.rpm ?? 0) * scale);
  const tpm = Math.round((documented.tpm ?? 0) * scale);
  return {
    quick,
    latency: { fixedMs: 150, perInputMs: 2, jitterMs: 50 },
    requestModel,
    requestModelScale: scale,
    modelOverrides: { [requestModel]: { rpm, tpm } },
    tokenModel: 'tongyi-embedding-vision-plus',
    workers: 2,
    concurrency: 6,
    scaleSizes: quick ? [300, 1000, 3000] : [1000, 5000, 20_000],
    steadyWarmupS: 5,
    longTexts: quick ? 110 : 200,
    tokenRunS: quick ? 63 : 150,
    tokenWindowS: 60,
    stopGraceS: quick ? 5 : 60,
    mixedObjects: quick ? 100 : 400,
    imageEvery: 5,
    peersBucket: quick ? 300 : 5000,
    sequentialSeconds: quick ? 10 : 30,
    langchain: { batchSize: 100, textsPerRequest: 20, maxConcurrency: 4, maxRetries: 8, fetchConcurrency: 8 },
    limiterProbeS: quick ? 4 : 8,
    pacingTexts: 6000,
  };
}
