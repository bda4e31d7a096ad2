// Small decoders for request bodies. They reproduce the two failure modes Qdrant has:
// serde refusing the shape (400 "Format error in JSON body: ...") and the validator refusing a
// value (422 "Validation error in JSON body: [...]"), so callers see the same status codes.

import { invalidType, missingField, tooSmall, validationError } from './errors.js';

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function asObject(value: unknown, expected = 'a map'): JsonObject {
  if (!isObject(value)) throw invalidType(value, expected);
  return value;
}

/** A field serde treats as `Option<T>`: absent and `null` both mean "not given". */
export function optional(obj: JsonObject, field: string): unknown {
  const value = obj[field];
  return value === null ? undefined : value;
}

export function required(obj: JsonObject, field: string): unknown {
  if (!(field in obj)) throw missingField(field);
  return obj[field];
}

export function asBool(value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidType(value, 'a boolean');
  return value;
}

export function asString(value: unknown): string {
  if (typeof value !== 'string') throw invalidType(value, 'a string');
  return value;
}

/** `usize` with an optional `#[validate(range(min = ...))]`. */
export function asUint(value: unknown, field: string, min?: number, max?: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw invalidType(value, 'usize');
  if (value < 0) throw invalidType(value, 'usize');
  if (min !== undefined && value < min) throw tooSmall(field, value, min);
  if (max !== undefined && value > max) {
    throw validationError(field, `value ${value} invalid, must be ${max} or smaller`);
  }
  return value;
}

export function optUint(obj: JsonObject, field: string, min?: number): number | undefined {
  const value = optional(obj, field);
  return value === undefined ? undefined : asUint(value, field, min);
}

export function optBool(obj: JsonObject, field: string): boolean | undefined {
  const value = optional(obj, field);
  return value === undefined ? undefined : asBool(value);
}

export function asArray(value: unknown): unknown[] {
  if (!Array.isArray(value)) throw invalidType(value, 'a sequence');
  return value;
}

/** A dense vector: a non-empty list of numbers, stored as f32 like Qdrant stores it. */
export function isDenseVector(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((x) => typeof x === 'number');
}
