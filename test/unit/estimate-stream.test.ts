/**
 * `estimate` streams the listing: a generated bucket of 50,000 texts is listed a page at a
 * time, twice (once to count and sample, once to group into jobs with the measured ratio),
 * each page handed out fresh and never asked for again within a pass, and the estimate
 * equals the counts the bucket was made with.
 */
import { describe, expect, it } from '@jest/globals';
import { estimateRun } from '../../src/estimate.js';
import { resolveModel } from '../../src/models.js';
import type { ListPage, ObjectStore } from '../../src/object-store.js';
import type { TokenCounter } from '../../src/tokens.js';

const PAGES = 50;
const PAGE = 1000;
const TEXT = 'x'.repeat(300);

/** A store whose listing is generated page by page, with a log of the pages asked for. */
function generatedStore(): ObjectStore & { asked: number[] } {
  const asked: number[] = [];
  return {
    asked,
    listPage(_bucket, _prefix, token): Promise<ListPage> {
      const n = token === undefined ? 0 : Number(token);
      asked.push(n);
      const objects = Array.from({ length: PAGE }, (_, i) => ({
        bucket: 'gen',
        key: `gen/${String(n * PAGE + i).padStart(7, '0')}.txt`,
        etag: `e${n}-${i}`,
        size: TEXT.length,
        lastModified: '2026-01-01T00:00:00.000Z',
      }));
      return Promise.resolve({ objects, ...(n + 1 < PAGES ? { nextToken: String(n + 1) } : {}) });
    },
    get: () => Promise.resolve({ bytes: new TextEncoder().encode(TEXT), etag: 'e' }),
    head: () => Promise.resolve(undefined),
    presign: () => Promise.reject(new Error('not used')),
  };
}

// three bytes a token, exactly
const tokens = { count: (text: string) => Math.ceil(text.length / 3) } as unknown as TokenCounter;

describe('estimate over a large listing', () => {
  it('lists page by page, twice, and counts every object', async () => {
    const store = generatedStore();
    const model = resolveModel('qwen3-vl-embedding');
    const e = await estimateRun(store, tokens, model, { bucket: 'gen', model, imageMode: 'inline', sample: 50 });
    const total = PAGES * PAGE;
    expect(e.objects).toEqual({ text: total, image: 0, video: 0, skipped: 0 });
    expect(e.textBytes).toBe(total * TEXT.length);
    expect(e.tokensPerByte).toBeCloseTo(1 / 3, 10);
    expect(e.textTokens).toBe(total * 100);
    expect(e.inputs).toBe(total);
    // jobs of maxElements (20) texts, one request each
    expect(e.requests).toBe(total / model.maxElements!);
    // each page once a pass, in order: nothing of a pass is listed again or held for later
    const pass = Array.from({ length: PAGES }, (_, i) => i);
    expect(store.asked).toEqual([...pass, ...pass]);
  }, 60_000);
});
