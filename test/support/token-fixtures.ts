/**
 * Texts whose Qwen token counts are stated here, by hand, so that a test's expected count
 * does not come from the code under test (the pipeline's tokens.ts, the simulator's own
 * count). test/unit/token-fixtures.test.ts checks each figure once against the tokenizer
 * package; every other test takes the figure as given.
 */

/** `alpha alpha ... alpha`: n words, n tokens (" alpha" is one token, the first "alpha" too). */
export function alphaWords(n: number): string {
  return Array.from({ length: n }, () => 'alpha').join(' ');
}

/** Words that are one token each after a space (" river"), and "river" one token at the start. */
const ONE_TOKEN_WORDS = [
  'river',
  'mountain',
  'engine',
  'harbor',
  'violet',
  'signal',
  'garden',
  'copper',
  'lantern',
  'orbit',
  'quartz',
  'thunder',
  'canvas',
];

/**
 * Deterministic text of exactly `n` tokens: "river" and n - 1 words of ONE_TOKEN_WORDS,
 * pseudo-random by `seed`, single spaces, no punctuation. Cut at any token boundary it
 * stays one token a word, so a split into chunks of at most c tokens (no overlap) makes
 * exactly ceil(n / c) chunks.
 */
export function plainWords(seed: number, n: number): string {
  let x = (seed * 2654435761) >>> 0;
  const out = ['river'];
  for (let i = 1; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out.push(ONE_TOKEN_WORDS[(x >>> 16) % ONE_TOKEN_WORDS.length]!);
  }
  return out.join(' ');
}

/** Short texts and their token counts. */
export const STATED_TEXTS: readonly (readonly [text: string, tokens: number])[] = [
  ['hello world', 2],
  ['a second text', 3],
  ['text 1', 3],
  ['text 2', 3],
  ['text 3', 3],
  ['ping', 1],
  ['Multimodal embedding model', 5],
  ['General multimodal representation model example', 6],
];

export function statedTokens(text: string): number {
  const found = STATED_TEXTS.find(([t]) => t === text);
  if (!found) throw new Error(`no stated token count for ${JSON.stringify(text)}: add it to STATED_TEXTS`);
  return found[1];
}

/**
 * Template tokens the provider adds to a text, as its API page shows them (a 5-token text
 * answered `input_tokens: 10`): the figure the simulator must charge, stated apart from
 * src/simulator/contract.ts.
 */
export const PAGE_TEMPLATE_TOKENS = 5;
