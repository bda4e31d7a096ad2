/**
 * Deterministic stand-in embeddings: pure functions of (model, dimension, input), so
 * the same input gives bit-identical vectors in every process, and different models
 * or dimensions give different spaces (as with the real API, where they never mix).
 *
 * Texts are feature-hashed: each lowercased word (a run of letters, digits and marks;
 * CJK scripts, which do not separate words, give character bigrams instead) adds a
 * signed +-1 at a few positions. Texts sharing words therefore score a higher cosine
 * than unrelated ones, which is what search tests need. A small dense component drawn
 * from a digest of the whole input keeps every vector non-zero and distinct inputs
 * apart (even anagrams of each other). Media bytes are not decoded: an image or video
 * is a dense vector from a digest of its bytes. A fused element, or a multi_images
 * group, is the normalised sum of its parts, so it stays close to each part.
 */
import { createHash } from 'node:crypto';
import { fmix32, hashString, sfc32 } from './prng.js';

export type VectorPart =
  { readonly kind: 'text'; readonly text: string } | { readonly kind: 'image' | 'video'; readonly bytes: Uint8Array };

/** Positions each word feature touches: several, so one collision does not erase a word. */
const POSITIONS_PER_FEATURE = 4;
/** Norm of the input-specific part relative to the word part (before normalising). */
const NOISE_WEIGHT = 0.15;

const CJK = '\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}\\p{Script=Hangul}';
const FEATURE_RE = new RegExp(`[${CJK}]+|(?:(?![${CJK}])[\\p{L}\\p{N}\\p{M}])+`, 'gu');
const CJK_RUN_RE = new RegExp(`^[${CJK}]`, 'u');

/** The word features of a text: lowercased words, and character bigrams of CJK runs. */
export function textFeatures(text: string): string[] {
  const out: string[] = [];
  for (const m of text.normalize('NFKC').toLowerCase().matchAll(FEATURE_RE)) {
    const run = m[0];
    if (!CJK_RUN_RE.test(run)) {
      out.push(run);
      continue;
    }
    const chars = Array.from(run);
    if (chars.length === 1) out.push(run);
    for (let i = 0; i + 1 < chars.length; i++) out.push(`${chars[i] ?? ''}${chars[i + 1] ?? ''}`);
  }
  return out;
}

function normalize(v: Float64Array): Float64Array {
  let sum = 0;
  for (const x of v) sum += x * x;
  if (sum === 0) return v;
  const inv = 1 / Math.sqrt(sum);
  for (let i = 0; i < v.length; i++) v[i] = (v[i] ?? 0) * inv;
  return v;
}

/** A unit vector with every coordinate drawn from a PRNG seeded by the digest. */
function denseUnit(dimension: number, digest: Buffer): Float64Array {
  const next = sfc32(digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8), digest.readUInt32LE(12));
  const v = new Float64Array(dimension);
  for (let i = 0; i < dimension; i++) v[i] = next() * 2 - 1;
  return normalize(v);
}

function digestOf(model: string, dimension: number, kind: string, content: string | Uint8Array): Buffer {
  return createHash('sha256').update(`${model}\u0000${dimension}\u0000${kind}\u0000`).update(content).digest();
}

function textVector(model: string, dimension: number, text: string): Float64Array {
  const words = new Float64Array(dimension);
  const seed = hashString(0x5eed, `${model}\u0000text`);
  let any = false;
  for (const feature of textFeatures(text)) {
    any = true;
    const h = hashString(seed, feature);
    for (let j = 1; j <= POSITIONS_PER_FEATURE; j++) {
      const hj = fmix32((h + Math.imul(j, 0x9e3779b9)) >>> 0);
      const pos = (hj >>> 1) % dimension;
      words[pos] = (words[pos] ?? 0) + ((hj & 1) === 1 ? 1 : -1);
    }
  }
  const noise = denseUnit(dimension, digestOf(model, dimension, 'text', text));
  if (!any) return noise;
  normalize(words);
  for (let i = 0; i < dimension; i++) words[i] = (words[i] ?? 0) + NOISE_WEIGHT * (noise[i] ?? 0);
  return normalize(words);
}

function partVector(model: string, dimension: number, part: VectorPart): Float64Array {
  return part.kind === 'text'
    ? textVector(model, dimension, part.text)
    : denseUnit(dimension, digestOf(model, dimension, part.kind, part.bytes));
}

/**
 * The unit vector of one element: a single part, a fused text/image/video element, or
 * the images of a multi_images group (the normalised sum of the parts' unit vectors).
 */
export function embedParts(model: string, dimension: number, parts: readonly VectorPart[]): number[] {
  if (!Number.isInteger(dimension) || dimension <= 0)
    throw new RangeError(`dimension must be a positive integer, got ${dimension}`);
  if (parts.length === 0) throw new RangeError('an element needs at least one part');
  const [first, ...rest] = parts.map((p) => partVector(model, dimension, p));
  const sum = first ?? new Float64Array(dimension);
  for (const v of rest) for (let i = 0; i < dimension; i++) sum[i] = (sum[i] ?? 0) + (v[i] ?? 0);
  return Array.from(rest.length > 0 ? normalize(sum) : sum);
}
