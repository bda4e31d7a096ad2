// Errors the stand-in answers with, worded like Qdrant 1.19 words them.
//
// Qdrant has two error paths with different shapes: the request extractor (body size, content
// type, JSON syntax, serde deserialization, validator) answers with `time: 0`, while errors
// raised by the storage layer carry the elapsed time. `fromExtractor` keeps that distinction.

export class QdrantHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly fromExtractor = false,
  ) {
    super(message);
    this.name = 'QdrantHttpError';
  }
}

/** serde's way of naming a JSON value in "invalid type: X, expected Y". */
export function describeForSerde(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return `boolean \`${String(value)}\``;
  if (typeof value === 'number') {
    return Number.isInteger(value) ? `integer \`${value}\`` : `floating point \`${value}\``;
  }
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`;
  if (Array.isArray(value)) return 'sequence';
  return 'map';
}

/** 400 for anything serde rejects while deserializing the body. */
export function formatError(detail: string): QdrantHttpError {
  return new QdrantHttpError(400, `Format error in JSON body: ${detail}`, true);
}

export function invalidType(value: unknown, expected: string): QdrantHttpError {
  return formatError(`invalid type: ${describeForSerde(value)}, expected ${expected}`);
}

export function missingField(field: string): QdrantHttpError {
  return formatError(`missing field \`${field}\``);
}

export function noUntaggedVariant(enumName: string): QdrantHttpError {
  return formatError(`data did not match any variant of untagged enum ${enumName}`);
}

/** 422: the body deserialized but the `validator` crate refused a value. */
export function validationError(field: string, detail: string): QdrantHttpError {
  return new QdrantHttpError(422, `Validation error in JSON body: [${field}: ${detail}]`, true);
}

export function tooSmall(field: string, value: number, min: number): QdrantHttpError {
  return validationError(field, `value ${value} invalid, must be ${min} or larger`);
}

/** actix's JsonPayloadError, rendered through actix-web-validator ("Payload error: ..."). */
export function payloadError(detail: string): QdrantHttpError {
  return new QdrantHttpError(400, `Payload error: ${detail}`, true);
}

export function queryParamError(detail: string): QdrantHttpError {
  return new QdrantHttpError(400, `Deserialize error in query parameters: ${detail}`, true);
}

export function notFound(detail: string): QdrantHttpError {
  return new QdrantHttpError(404, `Not found: ${detail}`);
}

export function collectionNotFound(name: string): QdrantHttpError {
  return notFound(`Collection \`${name}\` doesn't exist!`);
}

/** StorageError::BadInput. */
export function wrongInput(detail: string): QdrantHttpError {
  return new QdrantHttpError(400, `Wrong input: ${detail}`);
}

/** StorageError::AlreadyExists shares BadInput's wording but maps to 409. */
export function alreadyExists(detail: string): QdrantHttpError {
  return new QdrantHttpError(409, `Wrong input: ${detail}`);
}

/**
 * A real Qdrant feature the stand-in does not model. 501 is a status Qdrant never sends, so a
 * test hitting this cannot mistake the stand-in's gap for Qdrant's behaviour.
 */
export function notImplemented(what: string): QdrantHttpError {
  return new QdrantHttpError(501, `Qdrant stand-in does not implement ${what}`);
}
