// Point ids as Qdrant's ExtendedPointId: an unsigned integer or a UUID. UUIDs are accepted in
// every form the `uuid` crate parses (hyphenated, simple, braced, urn) and answered in lowercase
// hyphenated form; integers sort before UUIDs, as the derived `Ord` of the Rust enum does.

import { formatError, wrongInput } from './errors.js';

export type PointId = number | string;

const HEX32 = /^[0-9a-f]{32}$/i;
const HYPHENATED = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i;

function canonicalUuid(text: string): string | undefined {
  let body = text;
  if (/^urn:uuid:/i.test(body)) body = body.slice('urn:uuid:'.length);
  else if (body.startsWith('{') && body.endsWith('}')) body = body.slice(1, -1);
  const hyphenated = HYPHENATED.exec(body);
  const hex = hyphenated ? hyphenated.slice(1).join('') : HEX32.test(body) ? body : undefined;
  if (hex === undefined) return undefined;
  const h = hex.toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// Qdrant prints strings without quotes here ("value doc_1 is not a valid point ID").
function describeId(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return JSON.stringify(value) ?? String(value);
}

/** Parses an id from a JSON body; anything else is the exact 400 Qdrant answers. */
export function parsePointId(value: unknown): PointId {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  if (typeof value === 'string') {
    const uuid = canonicalUuid(value);
    if (uuid !== undefined) return uuid;
  }
  throw formatError(
    `value ${describeId(value)} is not a valid point ID, valid values are either an unsigned integer or a UUID`,
  );
}

/** Parses the `{id}` path segment of `GET /collections/{c}/points/{id}` (Rust's `FromStr`). */
export function parsePathPointId(text: string): PointId {
  if (/^\d+$/.test(text)) return Number(text);
  const uuid = canonicalUuid(text);
  if (uuid !== undefined) return uuid;
  throw wrongInput(`Can not recognize "${text}" as point id`);
}

/** Map key that keeps 1 and "1"-looking UUIDs apart. */
export function idKey(id: PointId): string {
  return typeof id === 'number' ? `n:${id}` : `u:${id}`;
}

export function compareIds(a: PointId, b: PointId): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'number') return -1;
  if (typeof b === 'number') return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
