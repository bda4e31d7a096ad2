// Request parsing and result shaping shared by the point endpoints: incoming points (list and
// batch forms), point selectors, `with_payload` / `with_vector`, and the Record shape Qdrant
// answers with (fields left out, not null, when not requested).

import { asArray, asObject, isDenseVector, isObject, optional, required, type JsonObject } from './decode.js';
import { formatError, invalidType, noUntaggedVariant, notImplemented, validationError, wrongInput } from './errors.js';
import { parseFilter, type Filter } from './filters.js';
import { parsePointId, type PointId } from './ids.js';
import { deleteAtPath, getValues, parseJsonPath, setAtPath, type PathItem } from './json-path.js';
import type { Collection, StoredPoint } from './store.js';
import { f32ForJson } from './vectors.js';

export interface IncomingPoint {
  id: PointId;
  vector: number[];
  payload: Record<string, unknown>;
}

export type UpdateMode = 'upsert' | 'insert_only' | 'update_only';

export interface InsertRequest {
  points: IncomingPoint[];
  /** A vector given by name; unnamed-vector collections reject it once resolved. */
  namedVector?: string;
  updateFilter?: Filter;
  updateMode: UpdateMode;
}

function parsePayload(raw: unknown): Record<string, unknown> {
  if (raw === undefined || raw === null) return {};
  return structuredClone(asObject(raw, 'a map'));
}

function parseVector(raw: unknown, named: (name: string) => void, enumName: string): number[] {
  if (isDenseVector(raw)) return raw;
  if (Array.isArray(raw) && raw.every(isDenseVector)) throw notImplemented('multivectors');
  if (isObject(raw) && ('text' in raw || 'image' in raw || 'object' in raw)) {
    throw notImplemented('server-side inference (Document / Image / Object inputs)');
  }
  if (isObject(raw) && Object.keys(raw).length > 0) {
    // Named vectors: reported once the collection is known, as Qdrant does.
    named(Object.keys(raw)[0] ?? '');
    return [];
  }
  throw noUntaggedVariant(enumName);
}

function rejectShardKey(body: JsonObject): void {
  if (optional(body, 'shard_key') !== undefined) throw notImplemented('shard keys');
}

/** `PUT /collections/{c}/points` body: `{points: [...]}` or `{batch: {ids, vectors, payloads}}`. */
export function parseInsert(rawBody: unknown): InsertRequest {
  const body = asObject(rawBody);
  rejectShardKey(body);
  const request: InsertRequest = { points: [], updateMode: 'upsert' };
  const onNamed = (name: string): void => {
    request.namedVector ??= name;
  };
  if (Array.isArray(body.points)) {
    for (const raw of body.points) {
      const p = asObject(raw);
      request.points.push({
        id: parsePointId(required(p, 'id')),
        vector: parseVector(required(p, 'vector'), onNamed, 'VectorStruct'),
        payload: parsePayload(p.payload),
      });
    }
  } else if (isObject(body.batch)) {
    const batch = body.batch;
    const ids = asArray(required(batch, 'ids')).map(parsePointId);
    const vectors = required(batch, 'vectors');
    if (!Array.isArray(vectors)) {
      if (isObject(vectors)) onNamed(Object.keys(vectors)[0] ?? '');
      else throw noUntaggedVariant('BatchVectorStruct');
    }
    const list = Array.isArray(vectors) ? vectors.map((v) => parseVector(v, onNamed, 'BatchVectorStruct')) : [];
    const payloads = optional(batch, 'payloads');
    const payloadList = payloads === undefined ? undefined : asArray(payloads);
    if (Array.isArray(vectors) && list.length !== ids.length) {
      throw validationError('batch.batch', `number of ids and vectors must be equal (${ids.length} != ${list.length})`);
    }
    if (payloadList !== undefined && payloadList.length !== ids.length) {
      throw validationError(
        'batch.batch',
        `number of ids and payloads must be equal (${ids.length} != ${payloadList.length})`,
      );
    }
    ids.forEach((id, i) => request.points.push({ id, vector: list[i] ?? [], payload: parsePayload(payloadList?.[i]) }));
  } else {
    throw noUntaggedVariant('PointInsertOperations');
  }
  const updateFilter = optional(body, 'update_filter');
  if (updateFilter !== undefined) request.updateFilter = parseFilter(updateFilter);
  const mode = optional(body, 'update_mode');
  if (mode !== undefined) {
    if (mode !== 'upsert' && mode !== 'insert_only' && mode !== 'update_only') {
      throw formatError(
        `unknown variant \`${String(mode)}\`, expected one of \`upsert\`, \`insert_only\`, \`update_only\``,
      );
    }
    request.updateMode = mode;
  }
  return request;
}

/** Dimension check Qdrant does before the WAL, so it is reported even with `wait=false`. */
export function checkVectors(c: Collection, request: { namedVector?: string | undefined; vectors: number[][] }): void {
  if (request.namedVector !== undefined) throw wrongInput(`Not existing vector name error: ${request.namedVector}`);
  for (const v of request.vectors) {
    if (v.length !== c.size) throw wrongInput(`Vector dimension error: expected dim: ${c.size}, got ${v.length}`);
  }
}

export interface PointSelector {
  ids?: PointId[];
  filter?: Filter;
}

/** PointsSelector (`{points}` or `{filter}`), or the optional pair in SetPayload/DeletePayload. */
export function parseSelector(body: JsonObject, enumName: string | undefined): PointSelector {
  rejectShardKey(body);
  const points = optional(body, 'points');
  const filter = optional(body, 'filter');
  if (points !== undefined) return { ids: asArray(points).map(parsePointId) };
  if (filter !== undefined) return { filter: parseFilter(filter) };
  if (enumName !== undefined) throw noUntaggedVariant(enumName);
  throw formatError('Either list of point ids or filter must be provided');
}

export type PayloadSelector = boolean | { include: PathItem[][] } | { exclude: PathItem[][] };

export function parseWithPayload(raw: unknown, fallback: boolean): PayloadSelector {
  if (raw === undefined || raw === null) return fallback;
  if (typeof raw === 'boolean') return raw;
  const paths = (list: unknown): PathItem[][] =>
    asArray(list).map((key) => {
      if (typeof key !== 'string') throw invalidType(key, 'a string');
      return parseJsonPath(key);
    });
  if (Array.isArray(raw)) return { include: paths(raw) };
  if (isObject(raw) && Array.isArray(raw.include)) return { include: paths(raw.include) };
  if (isObject(raw) && Array.isArray(raw.exclude)) return { exclude: paths(raw.exclude) };
  throw noUntaggedVariant('WithPayloadInterface');
}

/** `with_vector`: a bool, or vector names where "" is the unnamed vector. */
export function parseWithVector(raw: unknown): boolean {
  if (raw === undefined || raw === null) return false;
  if (typeof raw === 'boolean') return raw;
  if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) return raw.includes('');
  throw noUntaggedVariant('WithVector');
}

function selectPayload(
  payload: Record<string, unknown>,
  selector: PayloadSelector,
): Record<string, unknown> | undefined {
  if (selector === false) return undefined;
  if (selector === true) return structuredClone(payload);
  if ('include' in selector) {
    const out: Record<string, unknown> = {};
    for (const path of selector.include) {
      const [value] = getValues(payload, path);
      if (value !== undefined) setAtPath(out, path, structuredClone(value));
    }
    return out;
  }
  const out = structuredClone(payload);
  for (const path of selector.exclude) deleteAtPath(out, path);
  return out;
}

/** Record / ScoredPoint body: `payload` and `vector` are left out when not requested. */
export function shapePoint(p: StoredPoint, withPayload: PayloadSelector, withVector: boolean): JsonObject {
  const out: JsonObject = { id: p.id };
  const payload = selectPayload(p.payload, withPayload);
  if (payload !== undefined) out.payload = payload;
  if (withVector) out.vector = p.vector.map(f32ForJson);
  return out;
}
