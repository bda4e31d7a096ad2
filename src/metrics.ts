/**
 * What the pipeline reports about its API traffic, as an interface: the worker plugs in a
 * Prometheus registry (`prometheus.ts`), tests and the CLI a no-op.
 */
export interface PipelineMetrics {
  /** One HTTP request to the embedding API: `ok`, or the error's decision and code. */
  request(model: string, outcome: string, code: string, seconds: number): void;
  /** Inputs embedded and input tokens billed (from the API's usage). */
  embedded(model: string, inputs: number, textTokens: number, imageTokens: number): void;
  /** A request sent again after a transient failure. */
  retry(model: string): void;
  /** Time spent waiting for the shared rate limiter (or after a 429). */
  rateLimitWait(model: string, seconds: number): void;
  /** The shared limiter's learned requests per minute and margin for a model, as it last reported them. */
  rateLimitState?(model: string, learnedRpm: number, margin: number): void;
  /** A request woke up too late for its reserved slot and gave it back for another. */
  rateLimitLateWake?(model: string): void;
}

export const NO_METRICS: PipelineMetrics = {
  request: () => undefined,
  embedded: () => undefined,
  retry: () => undefined,
  rateLimitWait: () => undefined,
};
