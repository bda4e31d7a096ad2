/**
 * A run's request, checked once by one schema (src/run-request.ts): a bad value is named as
 * the flag it came from (`index`, `reindex`) or as the reindex job's field.
 */
import { describe, expect, it } from '@jest/globals';
import { parseRunRequest, reindexJobData } from '../../src/run-request.js';

const base = { bucket: 'docs', collection: 'docs', model: 'qwen3-vl-embedding' };

describe('a run request', () => {
  it.each([
    [
      { mode: 'sometimes' },
      '--mode: must be incremental, full or rebuild, got "sometimes"',
      'mode: must be incremental, full or rebuild, got "sometimes"',
    ],
    [
      { fuseUnpaired: 'alone' },
      '--fuse-unpaired: only applies with --fuse-sidecar',
      'fuseUnpaired: only applies with fuseSidecar',
    ],
    [
      { keys: ['a'], mode: 'rebuild' },
      '--mode: a rebuild indexes a whole prefix, not a list of keys',
      'mode: a rebuild indexes a whole prefix, not a list of keys',
    ],
  ])('names the bad value %j as the flag and as the field', (bad, asFlag, asField) => {
    // an Error given to toThrow: the whole message must be equal, not only contained
    expect(() => parseRunRequest({ ...base, ...bad }, 'flag')).toThrow(new Error(asFlag));
    expect(() => parseRunRequest({ ...base, ...bad }, 'field')).toThrow(new Error(asField));
  });

  it('names a key of the list by its flag and index', () => {
    expect(() => parseRunRequest({ ...base, keys: ['a', ''] }, 'flag')).toThrow(/^--key\.1: /);
    expect(() => parseRunRequest({ ...base, keys: ['a', ''] }, 'field')).toThrow(/^keys\.1: /);
  });

  it("leaves the CLI's other flags out, and a job may not carry the scan's filters", () => {
    const request = parseRunRequest({ ...base, wait: true, imageMode: 'url', include: ['*.txt'] }, 'flag');
    expect(request).toEqual({ ...base, include: ['*.txt'] });
    expect(() => parseRunRequest({ ...base, include: ['*.txt'] }, 'field')).toThrow(/include/);
  });

  it("queues as a job's data only the job's fields that are set", () => {
    const request = parseRunRequest({ ...base, prefix: undefined, prune: true, pageSize: 10 }, 'flag');
    expect(reindexJobData(request)).toStrictEqual({ ...base, prune: true });
  });
});
