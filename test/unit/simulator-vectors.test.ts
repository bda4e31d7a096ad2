import { describe, it, expect } from '@jest/globals';
import { embedParts, textFeatures } from '../../src/simulator/vectors.js';

const MODEL = 'qwen3-vl-embedding';

function norm(v: readonly number[]): number {
  return Math.sqrt(v.reduce((s, x) => s + x * x, 0));
}

function cosine(a: readonly number[], b: readonly number[]): number {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += (a[i] ?? 0) * (b[i] ?? 0);
  return dot / (norm(a) * norm(b));
}

const text = (t: string, dim = 1024, model = MODEL): number[] => embedParts(model, dim, [{ kind: 'text', text: t }]);

describe('simulator vectors', () => {
  it('gives the same vector, bit for bit, for the same input', () => {
    const a = text('The quick brown fox jumps over the lazy dog');
    const b = text('The quick brown fox jumps over the lazy dog');
    expect(b).toEqual(a);
    expect(Buffer.from(new Float64Array(a).buffer).toString('hex')).toBe(
      Buffer.from(new Float64Array(b).buffer).toString('hex'),
    );
  });

  it('returns unit vectors of the requested dimension', () => {
    for (const dim of [64, 256, 768, 1024, 1152, 2560]) {
      const v = text('a sentence about vectors', dim);
      expect(v).toHaveLength(dim);
      expect(norm(v)).toBeCloseTo(1, 10);
    }
  });

  it('depends on the dimension and on the model', () => {
    const a = text('same words', 1024);
    const b = text('same words', 512);
    expect(b.slice(0, 512)).not.toEqual(a.slice(0, 512));
    const c = text('same words', 1024, 'tongyi-embedding-vision-plus');
    expect(Math.abs(cosine(a, c))).toBeLessThan(0.3);
  });

  it('scores texts that share words higher than unrelated texts', () => {
    const query = text('red apples grow in the orchard');
    const related = text('the orchard grows red apples every autumn');
    const unrelated = text('quantum chromodynamics describes strong interactions');
    expect(cosine(query, related)).toBeGreaterThan(0.4);
    expect(cosine(query, related)).toBeGreaterThan(cosine(query, unrelated) + 0.3);
  });

  it('ignores case but still tells apart texts made of the same words', () => {
    const a = text('Dog bites man');
    const b = text('man bites dog');
    expect(cosine(a, b)).toBeGreaterThan(0.9);
    expect(cosine(a, b)).toBeLessThan(1 - 1e-6);
  });

  it('splits CJK text into character bigrams, so shared phrases score higher', () => {
    expect(textFeatures('北京大学')).toEqual(['北京', '京大', '大学']);
    expect(textFeatures('Hello, 世界! 2024年')).toEqual(['hello', '世界', '2024', '年']);
    const query = text('北京大学的图书馆');
    const related = text('我在北京大学学习');
    const unrelated = text('今天天气很好');
    expect(cosine(query, related)).toBeGreaterThan(cosine(query, unrelated) + 0.2);
  });

  it('never returns a zero vector, even for text without words', () => {
    const v = text('!!! ??? ...');
    expect(norm(v)).toBeCloseTo(1, 10);
    expect(cosine(v, text('--- ***'))).toBeLessThan(0.5);
  });

  it('gives the same vector for the same image bytes and different ones for different bytes', () => {
    const img = (bytes: number[]): number[] =>
      embedParts(MODEL, 256, [{ kind: 'image', bytes: Uint8Array.from(bytes) }]);
    expect(img([1, 2, 3])).toEqual(img([1, 2, 3]));
    expect(Math.abs(cosine(img([1, 2, 3]), img([1, 2, 4])))).toBeLessThan(0.3);
    expect(norm(img([9]))).toBeCloseTo(1, 10);
  });

  it('makes a fused vector close to each of its parts', () => {
    const bytes = Uint8Array.from([7, 7, 7]);
    const t = embedParts(MODEL, 512, [{ kind: 'text', text: 'a cat on a mat' }]);
    const i = embedParts(MODEL, 512, [{ kind: 'image', bytes }]);
    const fused = embedParts(MODEL, 512, [
      { kind: 'text', text: 'a cat on a mat' },
      { kind: 'image', bytes },
    ]);
    expect(norm(fused)).toBeCloseTo(1, 10);
    expect(cosine(fused, t)).toBeGreaterThan(0.6);
    expect(cosine(fused, i)).toBeGreaterThan(0.6);
  });

  it('embeds a text of tens of thousands of tokens', () => {
    const words = Array.from({ length: 32_000 }, (_, k) => `word${k % 997}`).join(' ');
    const v = text(words, 2560);
    expect(v).toHaveLength(2560);
    expect(norm(v)).toBeCloseTo(1, 10);
  });
});
