import { describe, expect, it } from '@jest/globals';
import { DEFAULT_BOUNDS, DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_TEXT_BYTES } from '../../src/bounds.js';
import { loadConfig, readBounds } from '../../src/config.js';
import { resolveModel } from '../../src/models.js';
import type { ObjectInfo } from '../../src/object-store.js';
import { textChunking } from '../../src/plan-limits.js';
import { planRequests } from '../../src/planner.js';
import { prepareTextInSlices } from '../../src/prepare.js';
import { classify } from '../../src/scanner.js';
import { countTokens, joinChunks, qwenTokens, splitByTokens, splitInSlices } from '../../src/tokens.js';

const qwen3 = resolveModel('qwen3-vl-embedding');
const MiB = 1024 * 1024;
const object = (key: string, size: number): ObjectInfo => ({
  bucket: 'b',
  key,
  size,
  etag: 'e',
  lastModified: '2024-01-01T00:00:00.000Z',
});
const verdict = (key: string, size: number, bounds = DEFAULT_BOUNDS): string => {
  const v = classify(object(key, size), qwen3, bounds);
  return 'code' in v ? `${v.code}: ${v.reason}` : `ok ${v.modality}`;
};

describe('size bounds at scan', () => {
  it('defaults to 16 MiB of text and 64 MiB of image, overridable by MAX_TEXT_BYTES and MAX_IMAGE_BYTES', () => {
    expect(DEFAULT_MAX_TEXT_BYTES).toBe(16 * MiB);
    expect(DEFAULT_MAX_IMAGE_BYTES).toBe(64 * MiB);
    expect(readBounds(loadConfig({}))).toEqual({ maxTextBytes: 16 * MiB, maxImageBytes: 64 * MiB });
    expect(readBounds(loadConfig({ MAX_TEXT_BYTES: '1000', MAX_IMAGE_BYTES: '2000' }))).toEqual({
      maxTextBytes: 1000,
      maxImageBytes: 2000,
    });
    expect(() => loadConfig({ MAX_TEXT_BYTES: 'lots' })).toThrow(/MAX_TEXT_BYTES/);
    expect(() => loadConfig({ MAX_IMAGE_BYTES: '0' })).toThrow(/MAX_IMAGE_BYTES/);
  });

  it('skips a text or an image over its bound as too-large, naming the bound, and keeps one at it', () => {
    expect(verdict('books/war.txt', 16 * MiB)).toBe('ok text');
    expect(verdict('books/huge.txt', 120_000_000)).toBe(
      `too-large: text of 120000000 bytes is over MAX_TEXT_BYTES (${16 * MiB} bytes): not read; split it, or raise MAX_TEXT_BYTES`,
    );
    expect(verdict('notes/a.md', 16 * MiB + 1)).toMatch(/^too-large: text of 16777217 bytes is over MAX_TEXT_BYTES/);
    expect(verdict('img/big.png', 64 * MiB)).toBe('ok image');
    expect(verdict('img/huge.tiff', 64 * MiB + 1)).toBe(
      `too-large: image of ${64 * MiB + 1} bytes is over MAX_IMAGE_BYTES (${64 * MiB} bytes): not read; shrink it, or raise MAX_IMAGE_BYTES`,
    );
    expect(verdict('img/small.jpg', 3000, { maxTextBytes: 10, maxImageBytes: 2000 })).toMatch(
      /^too-large: image of 3000 bytes is over MAX_IMAGE_BYTES \(2000 bytes\)/,
    );
    // videos keep the model's own limit
    expect(verdict('v/clip.mp4', 64 * MiB)).toBe(
      `too-large: video of ${64 * MiB} bytes is over qwen3-vl-embedding's limit of 50000000 bytes`,
    );
  });
});

describe('chunking a long text in slices', () => {
  const text = Array.from({ length: 4000 }, (_, i) => `word${i} 世界 🎉${i % 17 === 0 ? '\n\n' : ''}`).join(' ');

  it('gives chunks within the limit that cover the text in order, as splitByTokens does', async () => {
    const chunks = await splitInSlices(text, 100, 0, countTokens, 3000);
    expect(chunks.length).toBeGreaterThan(100);
    expect(joinChunks(chunks)).toBe(text);
    expect(chunks[0]?.charStart).toBe(0);
    expect(chunks.at(-1)?.charEnd).toBe(text.length);
    chunks.forEach((c, i) => {
      expect(c.index).toBe(i);
      expect(c.tokens).toBeLessThanOrEqual(100);
      expect(countTokens(c.text)).toBe(c.tokens);
      expect(text.slice(c.charStart, c.charEnd)).toBe(c.text);
      if (i > 0) expect(c.charStart).toBe(chunks[i - 1]?.charEnd);
    });
    // as dense as one pass: at most a chunk more than splitByTokens
    expect(chunks.length).toBeLessThanOrEqual(splitByTokens(text, 100, 0).length + 1);
  });

  it('keeps the overlap between consecutive chunks across slices', async () => {
    const chunks = await splitInSlices(text, 100, 20, countTokens, 3000);
    expect(joinChunks(chunks)).toBe(text);
    for (let i = 1; i < chunks.length; i++) {
      expect(chunks[i]!.charStart).toBeLessThan(chunks[i - 1]!.charEnd);
      expect(chunks[i]!.charStart).toBeGreaterThan(chunks[i - 1]!.charStart);
    }
  });

  it('splits a text of one slice exactly as splitByTokens', async () => {
    const short = text.slice(0, 2000);
    expect(await splitInSlices(short, 100, 10, countTokens, 3000)).toEqual(splitByTokens(short, 100, 10));
  });

  it("lets timers run between slices (a worker renews its other jobs' locks meanwhile)", async () => {
    let ticks = 0;
    const timer = setInterval(() => (ticks += 1), 0);
    try {
      const chunks = await splitInSlices(text, 100, 0, countTokens, 3000);
      const slices = Math.floor(text.length / 3000);
      expect(chunks.length).toBeGreaterThan(0);
      expect(ticks).toBeGreaterThanOrEqual(slices / 2);
    } finally {
      clearInterval(timer);
    }
  });

  it('never cuts a surrogate pair at a slice boundary', async () => {
    const emoji = '🎉'.repeat(5000);
    const chunks = await splitInSlices(emoji, 64, 0, countTokens, 1001);
    expect(joinChunks(chunks)).toBe(emoji);
    for (const c of chunks) expect(c.text).toMatch(/^(🎉)+$/u);
  });

  it('plans the chunks a worker made beforehand instead of tokenizing the text again', async () => {
    const opts = { model: qwen3, dimension: 256, chunkTokens: 100 };
    const prepared = await prepareTextInSlices('k', Buffer.from(text), qwenTokens, textChunking(opts));
    expect('ok' in prepared).toBe(true);
    const input = (prepared as { ok: Parameters<typeof planRequests>[0][number] }).ok;
    let splits = 0;
    const counting = {
      ...qwenTokens,
      split: (t: string, m: number, o: number) => (splits++, qwenTokens.split(t, m, o)),
    };
    const planned = planRequests([input], opts, counting).requests.flatMap((r) => r.inputs);
    expect(splits).toBe(0);
    expect(
      planned
        .sort((a, b) => a.chunk - b.chunk)
        .map((p) => p.content)
        .join(''),
    ).toBe(text);
    // a different chunking: the planner splits the text itself
    planRequests([input], { ...opts, chunkTokens: 80 }, counting);
    expect(splits).toBe(1);
  });
});
