/** The API simulator's public surface. */
export { startSimulator } from './server.js';
export type { Simulator, SimulatorConfigView } from './server.js';
export {
  DATA_URI_MAX_BYTES,
  DEFAULT_FAULTS,
  DEFAULT_LATENCY,
  DEFAULT_VIDEO_TOKEN_RULE,
  applyPatch,
  rateLimitFor,
  resolveSimulatorOptions,
} from './options.js';
export type {
  FaultOptions,
  LatencyOptions,
  RateLimit,
  RateLimitSetting,
  SimulatorOptions,
  SimulatorOptionsInput,
  SimulatorPatch,
  VideoTokenRule,
} from './options.js';
export type { ModelStats, SimulatorStats } from './stats.js';
export { ABBREVIATE_OVER, abbreviate, redactAuthorization } from './capture.js';
export type { CapturedRequest } from './capture.js';
export type { FaultKind } from './faults.js';
export type { LimitKind, Refusal } from './refusals.js';
export { DATA_INSPECTION_MARKER, INTERNAL_ERROR_MARKER } from './refusals.js';
export { embedParts, textFeatures } from './vectors.js';
export type { VectorPart } from './vectors.js';
export { mp4DurationSeconds, videoTokens } from './usage.js';
export { DEFAULT_SIMULATOR_PORT, registerSimulateCommand, simulatorOptionsFromFlags } from './cli.js';
export type { SimulateFlags } from './cli.js';
