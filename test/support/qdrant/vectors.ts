// Distance functions as Qdrant applies them: Cosine vectors (stored and query) are normalized
// on the way in, so the cosine score is a plain dot product; Euclid and Manhattan report the
// distance itself and rank smaller first. Components are rounded to f32, Qdrant's storage type.

export type Distance = 'Cosine' | 'Euclid' | 'Dot' | 'Manhattan';

export const DISTANCES: readonly Distance[] = ['Cosine', 'Euclid', 'Dot', 'Manhattan'];

/** What Qdrant stores for an incoming vector. */
export function preprocess(vector: readonly number[], distance: Distance): number[] {
  const f32 = vector.map((x) => Math.fround(x));
  if (distance !== 'Cosine') return f32;
  const length = Math.sqrt(f32.reduce((sum, x) => sum + x * x, 0));
  // Qdrant leaves (near-)zero vectors untouched rather than dividing by ~0.
  if (length < 1.1920929e-7) return f32;
  return f32.map((x) => Math.fround(x / length));
}

export function score(query: readonly number[], stored: readonly number[], distance: Distance): number {
  let acc = 0;
  for (let i = 0; i < query.length; i += 1) {
    const a = query[i] ?? 0;
    const b = stored[i] ?? 0;
    if (distance === 'Euclid') acc += (a - b) * (a - b);
    else if (distance === 'Manhattan') acc += Math.abs(a - b);
    else acc += a * b;
  }
  return Math.fround(distance === 'Euclid' ? Math.sqrt(acc) : acc);
}

/** Whether a higher score ranks first. */
export function higherIsBetter(distance: Distance): boolean {
  return distance === 'Cosine' || distance === 'Dot';
}

/** `score_threshold` keeps points at least this good. */
export function passesThreshold(value: number, threshold: number | undefined, distance: Distance): boolean {
  if (threshold === undefined) return true;
  return higherIsBetter(distance) ? value >= threshold : value <= threshold;
}

/**
 * The number to put in JSON for an f32, so it prints as Rust prints it ("0.70710677", not
 * "0.7071067690849304"): the shortest decimal that rounds back to the same f32.
 */
export function f32ForJson(x: number): number {
  const f = Math.fround(x);
  for (let digits = 1; digits <= 9; digits += 1) {
    const candidate = Number(f.toPrecision(digits));
    if (Math.fround(candidate) === f) return candidate;
  }
  return f;
}
