/**
 * Making an image acceptable to the model instead of skipping it (sharp / libvips):
 * - a format the model does not take is converted (to PNG when it has transparency,
 *   else JPEG), the first frame of an animation;
 * - an image over the model's byte limit (or whose data URI would not fit a request) is
 *   downscaled, keeping its aspect ratio, and re-encoded until it fits;
 * - the EXIF orientation is applied whenever the image is re-encoded, so it stays upright;
 * - decoding is bounded (`MAX_INPUT_PIXELS`): a decompression bomb is refused, not fatal;
 * - a side under 10 px or an aspect ratio over 200:1 is a skip with its reason.
 * The original object is never modified; what was done is returned for the point's payload.
 */
import type { Metadata, default as Sharp } from 'sharp';
import { imageShapeProblem, sniffImage } from './media.js';
import type { ImageFormat, ModelSpec } from './models.js';

/** Largest image decoded: 100 megapixels (a 10,000 x 10,000 photo). */
export const MAX_INPUT_PIXELS = 100_000_000;

/**
 * sharp, loaded the first time an image is decoded: a process that never sees one (the
 * producer, a worker of texts) does not load libvips (about 80 ms of CPU and its memory).
 */
let sharpModule: Promise<typeof Sharp> | undefined;
const loadSharp = (): Promise<typeof Sharp> => (sharpModule ??= import('sharp').then((m) => m.default));

/** Formats libvips (sharp's prebuilt binaries) can decode. */
const DECODABLE = new Set<ImageFormat>(['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif', 'heic']);

export interface FixupRecord {
  readonly original_bytes: number;
  readonly original_format: ImageFormat;
  readonly original_width: number;
  readonly original_height: number;
  readonly actions: readonly string[];
}

export type FixedImage =
  | {
      readonly bytes: Uint8Array;
      readonly format: ImageFormat;
      readonly width: number;
      readonly height: number;
      readonly fixup?: FixupRecord;
    }
  | { readonly skip: { readonly code: string; readonly reason: string } };

/** Whether an image in `format` could be made acceptable (decodable), for the scanner. */
export function canConvert(format: ImageFormat): boolean {
  return DECODABLE.has(format);
}

export interface FixupOptions {
  /** The largest data URI a request can carry (inline mode), on top of the model's byte limit. */
  readonly maxDataUriBytes?: number;
}

export async function fixImage(input: Uint8Array, model: ModelSpec, opts: FixupOptions = {}): Promise<FixedImage> {
  const facts = sniffImage(input);
  if ('error' in facts) return { skip: { code: 'not-an-image', reason: facts.error } };
  const shape = imageShapeProblem(facts.width, facts.height);
  if (shape) return { skip: { code: 'bad-shape', reason: shape } };
  // a decompression bomb: refused from its header, before any decoder is asked
  if (DECODABLE.has(facts.format) && facts.width * facts.height > MAX_INPUT_PIXELS)
    return {
      skip: {
        code: 'too-large',
        reason: `${facts.width}x${facts.height} pixels is over the ${MAX_INPUT_PIXELS / 1_000_000}-megapixel bound on decoding (a decompression bomb is not decoded)`,
      },
    };
  const byteLimit = Math.min(
    model.imageMaxBytes,
    opts.maxDataUriBytes !== undefined ? Math.floor(((opts.maxDataUriBytes - 64) * 3) / 4) : Infinity,
  );
  const formatOk = model.imageFormats.includes(facts.format);
  if (DECODABLE.has(facts.format)) {
    const sharp = await loadSharp();
    // a header can look right on a broken file (a truncated upload): decode it once, small
    // (JPEG shrinks on load, so this is cheap), and refuse what does not decode
    try {
      await sharp(input, { limitInputPixels: MAX_INPUT_PIXELS, pages: 1, failOn: 'truncated' })
        .resize(8, 8, { fit: 'inside' })
        .raw()
        .toBuffer();
    } catch (err) {
      return {
        skip: {
          code: 'undecodable-image',
          reason: `cannot decode the ${facts.format} image: ${(err as Error).message}`,
        },
      };
    }
  }
  if (formatOk && input.length <= byteLimit)
    return { bytes: input, format: facts.format, width: facts.width, height: facts.height };
  if (!DECODABLE.has(facts.format)) {
    const why = formatOk
      ? `over ${model.name}'s limit of ${byteLimit} bytes`
      : `${model.name} does not take ${facts.format}`;
    return {
      skip: {
        code: formatOk ? 'too-large' : 'unsupported-format',
        reason: `${why}, and ${facts.format} images cannot be converted here`,
      },
    };
  }

  // decode once (first frame, bounded), upright per EXIF
  const sharp = await loadSharp();
  let meta: Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: MAX_INPUT_PIXELS, pages: 1, failOn: 'truncated' }).metadata();
  } catch (err) {
    return {
      skip: { code: 'undecodable-image', reason: `cannot decode the ${facts.format} image: ${(err as Error).message}` },
    };
  }
  const target: ImageFormat = meta.hasAlpha && model.imageFormats.includes('png') ? 'png' : 'jpeg';
  const actions: string[] = [];
  if (!formatOk || facts.format !== target) actions.push(`converted ${facts.format} to ${target}`);
  if ((meta.pages ?? 1) > 1) actions.push('first frame of an animation');
  if ((meta.orientation ?? 1) > 1) actions.push(`EXIF orientation ${meta.orientation} applied`);

  let { width, height } = facts; // upright size
  let scale = input.length > byteLimit ? Math.sqrt(byteLimit / input.length) : 1;
  for (let attempt = 0; attempt < 8; attempt++) {
    const w = Math.max(10, Math.floor(facts.width * scale));
    const h = Math.max(10, Math.floor(facts.height * scale));
    let out: Buffer;
    try {
      let pipeline = sharp(input, { limitInputPixels: MAX_INPUT_PIXELS, pages: 1, failOn: 'truncated' }).rotate();
      if (scale < 1) pipeline = pipeline.resize(w, h, { fit: 'inside' });
      out = await (
        target === 'png' ? pipeline.png({ compressionLevel: 9 }) : pipeline.jpeg({ quality: 85, mozjpeg: true })
      ).toBuffer();
    } catch (err) {
      return {
        skip: {
          code: 'undecodable-image',
          reason: `cannot convert the ${facts.format} image: ${(err as Error).message}`,
        },
      };
    }
    if (out.length <= byteLimit) {
      const fixed = sniffImage(out);
      if (!('error' in fixed)) ({ width, height } = fixed);
      if (scale < 1) actions.push(`downscaled ${facts.width}x${facts.height} to ${width}x${height}`);
      return {
        bytes: new Uint8Array(out),
        format: target,
        width,
        height,
        fixup: {
          original_bytes: input.length,
          original_format: facts.format,
          original_width: facts.width,
          original_height: facts.height,
          actions,
        },
      };
    }
    // a little under what the ratio says, since JPEG size is not linear in the pixel count
    scale *= Math.sqrt(byteLimit / out.length) * 0.9;
  }
  return { skip: { code: 'too-large', reason: `could not bring the image under ${byteLimit} bytes` } };
}
