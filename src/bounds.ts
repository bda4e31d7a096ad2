/**
 * How much of one object the pipeline will read. An object over its bound is skipped at
 * scan (`too-large`, from the listing's size: nothing is downloaded), and a worker never
 * reads more than the bound plus one byte of an object that grew after the scan.
 *
 * - Texts: `MAX_TEXT_BYTES`, 16 MiB. The longest books are a few MB of UTF-8 (War and
 *   Peace is about 3.2 MB; a Chinese classic of 800,000 characters about 2.4 MB), so 16 MiB
 *   holds several of them. It bounds what a worker holds for one text: the bytes, the
 *   decoded string (up to twice that in UTF-16) and the tokens of one slice at a time,
 *   times `FETCH_CONCURRENCY`, and the time to chunk it (about 2 MB/s here: 8 s of
 *   tokenizing, done in slices that yield to the event loop).
 * - Images: `MAX_IMAGE_BYTES`, 64 MiB. Decoding is bounded to 100 megapixels
 *   (`MAX_INPUT_PIXELS` in fixup.ts); a 100-megapixel JPEG is 20 to 50 MB, and the largest
 *   image any model takes is 10 MB, so what lies beyond 64 MiB is an uncompressed or
 *   16-bit raster the fix-up would spend hundreds of MB on to shrink by a factor of ten.
 * - Videos: the model's own byte limit (they go by URL as they are; see scanner.ts).
 */

export interface ReadBounds {
  /** Largest text read, in bytes. @defaultValue 16 MiB */
  readonly maxTextBytes: number;
  /** Largest image read, in bytes. @defaultValue 64 MiB */
  readonly maxImageBytes: number;
  /**
   * Set when the provider cannot download the store's URLs (media-urls.ts): why. Videos,
   * which go by URL, are then skipped at scan (`unreachable-url`) with it. @defaultValue unset
   */
  readonly videoUrlProblem?: string | undefined;
}

export const DEFAULT_MAX_TEXT_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_IMAGE_BYTES = 64 * 1024 * 1024;

export const DEFAULT_BOUNDS: ReadBounds = Object.freeze({
  maxTextBytes: DEFAULT_MAX_TEXT_BYTES,
  maxImageBytes: DEFAULT_MAX_IMAGE_BYTES,
});

/** The reason an object of `size` bytes over its bound is not read, naming the variable. */
export function overBound(modality: 'text' | 'image', size: number, bounds: ReadBounds): string | undefined {
  const [limit, variable, advice] =
    modality === 'text'
      ? [bounds.maxTextBytes, 'MAX_TEXT_BYTES', 'split it']
      : [bounds.maxImageBytes, 'MAX_IMAGE_BYTES', 'shrink it'];
  if (size <= limit) return undefined;
  return `${modality} of ${size} bytes is over ${variable} (${limit} bytes): not read; ${advice}, or raise ${variable}`;
}

/** The reason an object that grew past its bound after the scan is not read further. */
export function grewPastBound(modality: 'text' | 'image', bounds: ReadBounds): string {
  const [limit, variable] =
    modality === 'text' ? [bounds.maxTextBytes, 'MAX_TEXT_BYTES'] : [bounds.maxImageBytes, 'MAX_IMAGE_BYTES'];
  return `${modality} grew past ${variable} (${limit} bytes) after the scan: not read further; raise ${variable} to index it`;
}
