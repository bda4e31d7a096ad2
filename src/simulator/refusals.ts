/**
 * Every answer the simulator refuses with: HTTP status, provider code and message, as
 * the contract's error table gives them. Messages the provider does not publish (the
 * limits) name the limit and the offending element, so a failing test says why.
 */

/** The limits a well-planned request never breaks (counted in `stats.limitViolations`). */
export type LimitKind =
  | 'elements'
  | 'images'
  | 'videos'
  | 'multi-images'
  | 'text-tokens'
  | 'image-bytes'
  | 'video-bytes'
  | 'data-uri-bytes'
  | 'body-bytes';

export interface Refusal {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  /** Set when the refusal is for breaking a documented limit. */
  readonly limit?: LimitKind;
}

/** Thrown inside validation so a deep check can answer without threading results up. */
export class Refused extends Error {
  constructor(readonly refusal: Refusal) {
    super(`${refusal.status} ${refusal.code}: ${refusal.message}`);
  }
}

export function invalidParameter(message: string, limit?: LimitKind): Refusal {
  return limit
    ? { status: 400, code: 'InvalidParameter', message, limit }
    : { status: 400, code: 'InvalidParameter', message };
}

export const INVALID_API_KEY: Refusal = { status: 401, code: 'InvalidApiKey', message: 'Invalid API-key provided.' };
export const URL_ERROR: Refusal = invalidParameter('url error, please check url!');
export const DOWNLOAD_FAILED: Refusal = {
  status: 400,
  code: 'InternalError.Algo.InvalidParameter',
  message: 'Failed to download multimodal content',
};
export const DATA_INSPECTION_FAILED: Refusal = {
  status: 400,
  code: 'DataInspectionFailed',
  message: 'Input data may contain inappropriate content.',
};
export const INTERNAL_ERROR: Refusal = {
  status: 500,
  code: 'InternalError',
  message: 'An internal error has occured, please try again later or contact service support.',
};
export const MODEL_UNAVAILABLE: Refusal = {
  status: 503,
  code: 'ModelUnavailable',
  message: 'Model is unavailable, please try again later.',
};
export const RATE_QUOTA: Refusal = {
  status: 429,
  code: 'Throttling.RateQuota',
  message: 'Requests rate limit exceeded, please try again later.',
};
export const ALLOCATION_QUOTA: Refusal = {
  status: 429,
  code: 'Throttling.AllocationQuota',
  message: 'Allocated quota exceeded, please increase your quota limit.',
};
export const BURST_RATE: Refusal = {
  status: 429,
  code: 'Throttling.BurstRate',
  message:
    'Request rate increased too quickly. To ensure system stability, please adjust your client logic to scale requests more smoothly over time.',
};

export function modelNotFound(model: string): Refusal {
  return { status: 404, code: 'ModelNotFound', message: `Model not exist: ${model}` };
}

export function bodyTooLarge(bytes: number, cap: number): Refusal {
  return {
    status: 413,
    code: 'BadRequest.TooLarge',
    message: `Request body of ${bytes} bytes is over the ${cap}-byte limit.`,
    limit: 'body-bytes',
  };
}

/** Markers a test puts in a text to get a refusal for that element every time. */
export const DATA_INSPECTION_MARKER = '[[sim:DataInspectionFailed]]';
export const INTERNAL_ERROR_MARKER = '[[sim:InternalError]]';
