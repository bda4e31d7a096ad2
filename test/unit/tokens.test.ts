import { describe, expect, it } from '@jest/globals';
import { countTokens, joinChunks, splitByTokens } from '../../src/tokens.js';

describe('the Qwen tokenizer', () => {
  it('counts tokens as Qwen does, never more than the UTF-8 bytes', () => {
    expect(countTokens('hello world')).toBe(2);
    expect(countTokens('')).toBe(0);
    for (const s of ['你好，世界', 'ümlaut café', '🎉🎉 party', 'a'.repeat(1000)]) {
      const n = countTokens(s);
      expect(n).toBeGreaterThan(0);
      expect(n).toBeLessThanOrEqual(Buffer.byteLength(s));
    }
  });

  it('splits a long text into chunks of at most the limit that reassemble to it', () => {
    const text = Array.from({ length: 3000 }, (_, i) => `word${i} 世界 🎉`).join(' ');
    const chunks = splitByTokens(text, 200, 0);
    expect(chunks.length).toBeGreaterThan(10);
    for (const c of chunks) {
      expect(c.tokens).toBeLessThanOrEqual(200);
      expect(countTokens(c.text)).toBe(c.tokens);
      expect(text.slice(c.charStart, c.charEnd)).toBe(c.text);
    }
    expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i));
    expect(joinChunks(chunks)).toBe(text);
    // dense: all chunks but the last are close to the limit
    expect(chunks.slice(0, -1).every((c) => c.tokens >= 190)).toBe(true);
  });

  it('overlaps consecutive chunks by about the requested number of tokens', () => {
    const text = Array.from({ length: 2000 }, (_, i) => `token${i}`).join(' ');
    const chunks = splitByTokens(text, 100, 20);
    for (let i = 1; i < chunks.length; i++) {
      const prev = chunks[i - 1]!;
      const cur = chunks[i]!;
      expect(cur.charStart).toBeLessThan(prev.charEnd);
      const shared = countTokens(text.slice(cur.charStart, prev.charEnd));
      expect(shared).toBeGreaterThanOrEqual(18);
      expect(shared).toBeLessThanOrEqual(22);
    }
    expect(joinChunks(chunks)).toBe(text);
  });

  it('never cuts inside a character, even where a token boundary falls inside one', () => {
    const text = '🎉'.repeat(500) + '字'.repeat(500);
    const chunks = splitByTokens(text, 7, 0);
    for (const c of chunks) {
      expect(Buffer.from(c.text, 'utf8').toString('utf8')).toBe(c.text); // no lone surrogate
      expect(c.tokens).toBeLessThanOrEqual(7);
    }
    expect(joinChunks(chunks)).toBe(text);
  });

  it('refuses a chunk size below 4 tokens or an overlap not below the chunk size', () => {
    expect(() => splitByTokens('abc', 3, 0)).toThrow(/maxTokens/);
    expect(() => splitByTokens('abc', 10, 10)).toThrow(/overlap/);
  });
});
