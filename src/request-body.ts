/**
 * The JSON body of an API request, and what each part of it weighs in bytes: the planner
 * sizes requests with the same encoding that sends them.
 */
import type { ApiContent, ApiParameters, ApiRequestBody } from './api.js';
import { dataUriLength } from './media.js';
import type { ModelSpec } from './models.js';
import type { PreparedImage } from './prepared-input.js';

/** What every request of a run carries beside its inputs. */
export interface RequestSettings {
  readonly model: ModelSpec;
  readonly dimension: number;
  readonly fps?: number | undefined;
  readonly instruct?: string | undefined;
}

/** Bytes of a value as JSON. */
export const utf8Bytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value));

/** The `parameters` object of every request of a run. */
export function requestParameters(opts: RequestSettings): ApiParameters {
  const p: ApiParameters = {};
  if (opts.model.acceptsDimension) p.dimension = opts.dimension;
  if (opts.fps !== undefined) p.fps = opts.fps;
  if (opts.instruct !== undefined) p.instruct = opts.instruct;
  return p;
}

/** The JSON body of a planned request. */
export function requestBody(
  opts: RequestSettings,
  request: { readonly inputs: readonly { readonly content: ApiContent }[] },
): ApiRequestBody {
  return {
    model: opts.model.name,
    input: { contents: request.inputs.map((i) => i.content) },
    parameters: requestParameters(opts),
  };
}

export function imageContent(image: PreparedImage): string {
  return image.payload.kind === 'url'
    ? image.payload.url
    : `data:image/${image.format};base64,${Buffer.from(image.payload.data).toString('base64')}`;
}

export function imageBodyBytes(image: PreparedImage): number {
  // +2 for the JSON quotes; base64 and data-URI prefixes never need escaping.
  return (
    (image.payload.kind === 'url'
      ? utf8Bytes(image.payload.url) - 2
      : dataUriLength(image.format, image.payload.data.length)) + 2
  );
}
