import { describe, expect, it } from '@jest/globals';
import { createProgress } from '../../src/cli/progress.js';
import type { RunCounters, RunState } from '../../src/runs.js';

const zero: RunCounters = {
  scanned: 0,
  skipped: 0,
  filteredOut: 0,
  queuedObjects: 0,
  jobsAdded: 0,
  jobsDeduplicated: 0,
  jobsDone: 0,
  jobsFailed: 0,
  objectsIndexed: 0,
  objectsSkipped: 0,
  objectsFailed: 0,
  points: 0,
  requests: 0,
  inputs: 0,
  textTokens: 0,
  imageTokens: 0,
  retries: 0,
  throttled: 0,
  unchanged: 0,
  new: 0,
  changed: 0,
  deleted: 0,
  seenMarked: 0,
  jobsFollowed: 0,
  scanWaitMs: 0,
  scanWaits: 0,
};

function run(counters: Partial<RunCounters>, extra: Partial<RunState> = {}): RunState {
  return {
    id: 'r1',
    bucket: 'b',
    prefix: '',
    collection: 'c',
    model: 'm',
    dimension: 4,
    startedAt: new Date().toISOString(),
    scanStatus: 'complete',
    pages: 1,
    counters: { ...zero, ...counters },
    notes: {},
    ...extra,
  };
}

describe('progress on output that is not a terminal', () => {
  it('prints plain lines with objects, inputs, requests, rate, ETA and failures', () => {
    const lines: string[] = [];
    const p = createProgress((l) => lines.push(l), false, 0);
    p.update(run({ queuedObjects: 100, objectsIndexed: 10, inputs: 12, requests: 1 }));
    p.update(run({ queuedObjects: 100, objectsIndexed: 50, objectsFailed: 2, inputs: 60, requests: 3 }));
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(
      /^run r1: objects 52\/100 \(50 indexed, 0 unchanged, 0 skipped, 2 failed\), 60 inputs, 3 requests, [\d.]+ objects\/s, ETA (\d+s|\?)$/,
    );
    expect(lines.join('\n').includes(String.fromCharCode(27))).toBe(false); // no terminal escape codes
  });

  it('prints at most one line per period, and the final one always', () => {
    const lines: string[] = [];
    const p = createProgress((l) => lines.push(l), false, 60_000);
    p.update(run({ queuedObjects: 10, objectsIndexed: 1 }));
    p.update(run({ queuedObjects: 10, objectsIndexed: 2 }));
    p.update(run({ queuedObjects: 10, objectsIndexed: 3 }));
    p.update(run({ queuedObjects: 10, objectsIndexed: 10 }, { finishedAt: new Date().toISOString() }));
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/objects 10\/10/);
  });
});
