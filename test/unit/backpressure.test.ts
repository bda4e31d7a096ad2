import { describe, expect, it } from '@jest/globals';
import { defaultQueueBound, queueRoom } from '../../src/backpressure.js';

/** A queue whose waiting count follows a script, one value per look. */
function scriptedQueue(counts: number[]): { getJobCountByTypes: () => Promise<number>; looks: () => number } {
  let looks = 0;
  return {
    getJobCountByTypes: () => Promise.resolve(counts[Math.min(looks++, counts.length - 1)] ?? 0),
    looks: () => looks,
  };
}

describe('queue room (backpressure)', () => {
  it('sizes the default bound from the rate limit and the workers, at least 100', () => {
    expect(defaultQueueBound({ rpm: 1200 }, 4)).toBe(600);
    expect(defaultQueueBound({ rpm: 120 }, 4)).toBe(100);
    expect(defaultQueueBound({ rpm: null }, 50)).toBe(200);
  });

  it('lets jobs through at once while they fit, and waits until the queue drains below the bound', async () => {
    const q = scriptedQueue([2, 9, 8, 7, 3]);
    const events: string[] = [];
    const room = queueRoom(q, {
      bound: 8,
      pollMs: 1,
      onPause: (i) => void events.push(`pause ${i.waiting}/${i.bound}`),
      onResume: () => void events.push('resume'),
    });
    await room.wait(5); // 2 + 5 <= 8
    expect(events).toEqual([]);
    await room.wait(5); // 9, 8, 7 do not leave room for 5 more; 3 does
    expect(events).toEqual(['pause 9/8', 'resume']);
    expect(q.looks()).toBe(5);
  });

  it('lets a page of more jobs than the bound through once the queue is empty', async () => {
    const q = scriptedQueue([4, 1, 0]);
    await queueRoom(q, { bound: 3, pollMs: 1 }).wait(10);
    expect(q.looks()).toBe(3);
  });

  it('never looks at the queue without a bound (MAX_QUEUED_JOBS=0)', async () => {
    const q = scriptedQueue([1_000_000]);
    await queueRoom(q, { bound: 0 }).wait(50);
    expect(q.looks()).toBe(0);
  });
});
