/**
 * Run records for tests that drive the RunStore directly: one run's info with the values the
 * tests do not care about filled in, and its start time where a test does (retention).
 */
import type { RunInfo } from '../../src/run-types.js';

export function runInfo(id: string, startedAt = new Date().toISOString()): RunInfo {
  return {
    id,
    bucket: 'b',
    prefix: '',
    collection: 'c',
    model: 'qwen3-vl-embedding',
    dimension: 256,
    startedAt,
    settings: '{}',
  };
}
