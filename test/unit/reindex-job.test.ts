/**
 * The bounds of a reindex job's `keys` (README, "Reindex from a queue": string[], 1..10,000),
 * at the schema the worker applies. test/integration/readme-claims-queue.test.ts shows the
 * worker failing jobs outside them, and each field's effect on a run.
 */
import { describe, expect, it } from '@jest/globals';
import { parseReindexJob } from '../../jobs/reindex-job.js';

const base = { bucket: 'docs', collection: 'docs', model: 'qwen3-vl-embedding' };
const keys = (n: number): string[] => Array.from({ length: n }, (_, i) => `k/${i}`);

describe("a reindex job's keys", () => {
  it.each([1, 10_000])('takes %i keys', (n) => {
    expect(parseReindexJob({ ...base, keys: keys(n) }).keys).toHaveLength(n);
  });

  it.each([
    [0, /^malformed reindex job: keys: /],
    [10_001, /^malformed reindex job: keys: /],
  ])('refuses %i keys, naming the field', (n, message) => {
    expect(() => parseReindexJob({ ...base, keys: keys(n) })).toThrow(message);
  });

  it('refuses an empty key, naming its index', () => {
    expect(() => parseReindexJob({ ...base, keys: ['a', ''] })).toThrow(/^malformed reindex job: keys\.1: /);
  });
});
