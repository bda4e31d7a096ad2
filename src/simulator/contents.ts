/**
 * The shape of a request body, checked the way the contract states it: the envelope
 * (`model`, `input.contents`), the `parameters`, and each element's keys and value
 * types. No I/O and no limits beyond one element: validate.ts does those.
 */
import type { EmbeddingType } from '../api.js';
import type { ModelOverrides, ModelSpec } from '../models.js';
import { contractModel, isContractModel } from './contract.js';
import { Refused, invalidParameter, modelNotFound } from './refusals.js';

export interface Envelope {
  readonly spec: ModelSpec;
  readonly contents: readonly unknown[];
  readonly parameters: unknown;
}

export interface Parameters {
  readonly dimension: number;
  /** Video frame sampling in [0, 1]; 1.0 when not given. */
  readonly fps: number;
  readonly instruct?: string;
}

/** One element as written: its text, image references (URLs or data URIs) and video URL. */
export interface ParsedElement {
  readonly index: number;
  readonly type: EmbeddingType;
  readonly text?: string;
  /** One entry for `image`, each image of a `multi_images` group in order. */
  readonly images: readonly string[];
  readonly video?: string;
}

const ELEMENT_KEYS = ['text', 'image', 'video', 'multi_images'] as const;

const refuse = (message: string): never => {
  throw new Refused(invalidParameter(message));
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The body's envelope and its model; unknown models are 404 ModelNotFound. */
export function parseEnvelope(body: unknown, overrides: ModelOverrides): Envelope {
  if (!isRecord(body)) return refuse('The request body must be a JSON object.');
  const { model, input, parameters } = body;
  if (typeof model !== 'string' || model.trim() === '') return refuse('Field required: model (a string).');
  if (!isContractModel(model)) throw new Refused(modelNotFound(model));
  if (!isRecord(input)) return refuse('Field required: input (an object with contents).');
  const { contents } = input;
  if (!Array.isArray(contents)) return refuse('Field required: input.contents (an array).');
  if (contents.length === 0) return refuse('input.contents must not be empty.');
  return { spec: contractModel(model, overrides), contents, parameters };
}

/** `parameters`, with JSON null taken as absent (SDKs send None that way). */
export function parseParameters(raw: unknown, spec: ModelSpec): Parameters {
  if (raw === undefined || raw === null) return { dimension: spec.defaultDimension, fps: 1 };
  if (!isRecord(raw)) return refuse('parameters must be an object.');
  const { dimension, output_type: outputType, fps, instruct } = raw;
  let dim = spec.defaultDimension;
  if (dimension !== undefined && dimension !== null) {
    if (!spec.acceptsDimension) {
      return refuse(
        `${spec.name} does not accept the dimension parameter (its vectors have ${spec.defaultDimension} dimensions).`,
      );
    }
    if (typeof dimension !== 'number' || !spec.dimensions.includes(dimension)) {
      return refuse(
        `dimension ${JSON.stringify(dimension)} is not supported by ${spec.name} (supported: ${spec.dimensions.join(', ')}).`,
      );
    }
    dim = dimension;
  }
  if (outputType !== undefined && outputType !== null && outputType !== 'dense') {
    return refuse(`output_type ${JSON.stringify(outputType)} is not supported (only "dense").`);
  }
  let frames = 1;
  if (fps !== undefined && fps !== null) {
    if (typeof fps !== 'number' || !Number.isFinite(fps) || fps < 0 || fps > 1)
      return refuse(`fps must be a number in [0, 1], got ${JSON.stringify(fps)}.`);
    frames = fps;
  }
  if (instruct !== undefined && instruct !== null && typeof instruct !== 'string')
    return refuse('instruct must be a string.');
  return typeof instruct === 'string' ? { dimension: dim, fps: frames, instruct } : { dimension: dim, fps: frames };
}

function nonBlankText(value: unknown, where: string): string {
  if (typeof value !== 'string') return refuse(`${where} must be a string.`);
  if (value.trim() === '') return refuse(`${where} is empty: a text must have content.`);
  return value;
}

function mediaRef(value: unknown, where: string): string {
  if (typeof value !== 'string' || value.trim() === '')
    return refuse(`${where} must be a non-empty string (a URL${where.endsWith('video') ? '' : ' or a data URI'}).`);
  return value;
}

/**
 * One element: a bare string (text) or an object of text/image/video (several of them:
 * one fused element) or multi_images alone. Elements of fused-only models are all `vl`.
 */
export function parseElement(raw: unknown, index: number, spec: ModelSpec): ParsedElement {
  const at = `contents[${index}]`;
  const typeOf = (own: EmbeddingType): EmbeddingType => (spec.independent ? own : 'vl');
  if (typeof raw === 'string') return { index, type: typeOf('text'), text: nonBlankText(raw, at), images: [] };
  if (!isRecord(raw)) return refuse(`${at} must be a string or an object with text, image, video or multi_images.`);
  const keys = Object.keys(raw);
  if (keys.length === 0) return refuse(`${at} is an empty object (give one of ${ELEMENT_KEYS.join(', ')}).`);
  const unknown = keys.find((k) => !(ELEMENT_KEYS as readonly string[]).includes(k));
  if (unknown !== undefined) return refuse(`${at} has unknown key "${unknown}" (allowed: ${ELEMENT_KEYS.join(', ')}).`);

  if ('multi_images' in raw) {
    if (keys.length > 1) return refuse(`${at}: multi_images cannot be combined with other keys in one element.`);
    if (spec.multiImagesMax === 0) return refuse(`${at}: ${spec.name} does not support multi_images.`);
    const group = raw.multi_images;
    if (!Array.isArray(group) || group.length === 0)
      return refuse(`${at}.multi_images must be a non-empty array of images.`);
    if (group.length > spec.multiImagesMax) {
      throw new Refused(
        invalidParameter(
          `${at}.multi_images has ${group.length} images, over ${spec.name}'s limit of ${spec.multiImagesMax} images per multi_images element.`,
          'multi-images',
        ),
      );
    }
    const images = group.map((g, j) => mediaRef(g, `${at}.multi_images[${j}]`));
    return { index, type: typeOf('multi_images'), images };
  }

  if (keys.length > 1 && !spec.fused) {
    return refuse(
      `${at}: ${spec.name} does not support fused elements (${keys.join(' + ')} in one object); send them as separate elements.`,
    );
  }
  const text = 'text' in raw ? nonBlankText(raw.text, `${at}.text`) : undefined;
  const image = 'image' in raw ? mediaRef(raw.image, `${at}.image`) : undefined;
  const video = 'video' in raw ? mediaRef(raw.video, `${at}.video`) : undefined;
  const single = keys[0] as 'text' | 'image' | 'video';
  const element: ParsedElement = {
    index,
    type: keys.length > 1 ? 'vl' : typeOf(single),
    images: image === undefined ? [] : [image],
    ...(text === undefined ? {} : { text }),
    ...(video === undefined ? {} : { video }),
  };
  return element;
}
