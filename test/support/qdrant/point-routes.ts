// Point endpoints: upsert, retrieve, delete, scroll, count, query and the legacy search.
// Each handler parses the whole body before resolving the collection, so, as in Qdrant, a
// malformed body is a 400/422 even when the collection does not exist.

import {
  asArray,
  asObject,
  asUint,
  isDenseVector,
  isObject,
  optBool,
  optUint,
  optional,
  required,
  type JsonObject,
} from './decode.js';
import { noUntaggedVariant, notFound, notImplemented } from './errors.js';
import { matchesFilter, parseFilter, type Filter } from './filters.js';
import { parseWait, updateResult } from './http.js';
import { compareIds, idKey, parsePathPointId, parsePointId, type PointId } from './ids.js';
import {
  checkVectors,
  parseInsert,
  parseSelector,
  parseWithPayload,
  parseWithVector,
  shapePoint,
  type PayloadSelector,
} from './point-ops.js';
import { param, type RequestContext, type Route } from './routes.js';
import type { Collection, StoredPoint } from './store.js';
import { f32ForJson, higherIsBetter, passesThreshold, preprocess, score } from './vectors.js';

const collectionOf = (ctx: RequestContext): Collection => ctx.store.get(param(ctx, 'collection_name'));

function optFilter(body: JsonObject): Filter | undefined {
  const raw = optional(body, 'filter');
  return raw === undefined ? undefined : parseFilter(raw);
}

export function pointsMatching(c: Collection, filter: Filter | undefined): StoredPoint[] {
  return [...c.points.entries()]
    .filter(([key, p]) => matchesFilter(filter, { payload: p.payload, key }))
    .map(([, p]) => p)
    .sort((a, b) => compareIds(a.id, b.id));
}

function upsert(ctx: RequestContext): unknown {
  const request = parseInsert(ctx.body);
  const wait = parseWait(ctx.query);
  const c = collectionOf(ctx);
  checkVectors(c, { namedVector: request.namedVector, vectors: request.points.map((p) => p.vector) });
  const version = ctx.store.nextOperationId(c);
  for (const incoming of request.points) {
    const key = idKey(incoming.id);
    const existing = c.points.get(key);
    if (existing !== undefined && request.updateMode === 'insert_only') continue;
    if (existing === undefined && request.updateMode === 'update_only') continue;
    // update_filter only guards existing points; new ones are inserted regardless.
    if (
      existing !== undefined &&
      request.updateFilter !== undefined &&
      !matchesFilter(request.updateFilter, { payload: existing.payload, key })
    )
      continue;
    c.points.set(key, {
      id: incoming.id,
      vector: preprocess(incoming.vector, c.distance),
      payload: incoming.payload,
      version,
    });
  }
  return updateResult(version, wait);
}

function retrieve(ctx: RequestContext): unknown {
  const body = asObject(ctx.body);
  const parsed = asArray(required(body, 'ids')).map(parsePointId);
  const withPayload = parseWithPayload(optional(body, 'with_payload'), true);
  const withVector = parseWithVector(optional(body, 'with_vector'));
  const c = collectionOf(ctx);
  const seen = new Set<string>();
  const out: JsonObject[] = [];
  for (const id of parsed) {
    const key = idKey(id);
    const p = c.points.get(key);
    if (p === undefined || seen.has(key)) continue;
    seen.add(key);
    out.push(shapePoint(p, withPayload, withVector));
  }
  return out;
}

function getPoint(ctx: RequestContext): unknown {
  const id = parsePathPointId(param(ctx, 'id'));
  const p = collectionOf(ctx).points.get(idKey(id));
  if (p === undefined) throw notFound(`Point with id ${id} does not exists!`);
  return shapePoint(p, true, true);
}

function deletePoints(ctx: RequestContext): unknown {
  const selector = parseSelector(asObject(ctx.body), 'PointsSelector');
  const wait = parseWait(ctx.query);
  const c = collectionOf(ctx);
  const keys =
    selector.ids !== undefined ? selector.ids.map(idKey) : pointsMatching(c, selector.filter).map((p) => idKey(p.id));
  for (const key of keys) c.points.delete(key);
  return updateResult(ctx.store.nextOperationId(c), wait);
}

function scroll(ctx: RequestContext): unknown {
  const body = asObject(ctx.body);
  if (optional(body, 'order_by') !== undefined) throw notImplemented('scroll with `order_by`');
  if (optional(body, 'shard_key') !== undefined) throw notImplemented('shard keys');
  const limit = optUint(body, 'limit', 1) ?? 10;
  const rawOffset = optional(body, 'offset');
  const offset: PointId | undefined = rawOffset === undefined ? undefined : parsePointId(rawOffset);
  const filter = optFilter(body);
  const withPayload = parseWithPayload(optional(body, 'with_payload'), true);
  const withVector = parseWithVector(optional(body, 'with_vector'));
  const c = collectionOf(ctx);
  const page = pointsMatching(c, filter)
    .filter((p) => offset === undefined || compareIds(p.id, offset) >= 0)
    .slice(0, limit + 1);
  const next = page.length > limit ? page[limit] : undefined;
  return {
    points: page.slice(0, limit).map((p) => shapePoint(p, withPayload, withVector)),
    next_page_offset: next === undefined ? null : next.id,
  };
}

function count(ctx: RequestContext): unknown {
  const body = asObject(ctx.body);
  if (optional(body, 'shard_key') !== undefined) throw notImplemented('shard keys');
  // Counts are always exact here; the flag is only checked for its type.
  optBool(body, 'exact');
  const filter = optFilter(body);
  return { count: pointsMatching(collectionOf(ctx), filter).length };
}

interface NearestRequest {
  vector: number[];
  namedVector?: string | undefined;
  filter?: Filter | undefined;
  limit: number;
  offset: number;
  threshold?: number | undefined;
  withPayload: PayloadSelector;
  withVector: boolean;
}

function nearest(c: Collection, r: NearestRequest): JsonObject[] {
  checkVectors(c, { namedVector: r.namedVector, vectors: [r.vector] });
  const query = preprocess(r.vector, c.distance);
  const sign = higherIsBetter(c.distance) ? -1 : 1;
  return pointsMatching(c, r.filter)
    .map((p) => ({ p, s: score(query, p.vector, c.distance) }))
    .filter(({ s }) => passesThreshold(s, r.threshold, c.distance))
    .sort((a, b) => sign * (a.s - b.s) || compareIds(a.p.id, b.p.id))
    .slice(r.offset, r.offset + r.limit)
    .map(({ p, s }) => {
      const { id, ...rest } = shapePoint(p, r.withPayload, r.withVector);
      return { id, version: p.version, score: f32ForJson(s), ...rest };
    });
}

function parseQueryVector(raw: unknown): { vector: number[] } {
  if (isDenseVector(raw)) return { vector: raw };
  if (isObject(raw) && isDenseVector(raw.nearest)) {
    if (optional(raw, 'mmr') !== undefined) throw notImplemented('MMR re-ranking');
    return { vector: raw.nearest };
  }
  if (raw === undefined) throw notImplemented('queries without `query` (ordering by id)');
  throw notImplemented(
    `this kind of query (${JSON.stringify(raw).slice(0, 60)}); only dense nearest-vector queries are modelled`,
  );
}

function optNumber(body: JsonObject, field: string): number | undefined {
  const value = optional(body, field);
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw noUntaggedVariant('QueryRequest');
  return value;
}

function query(ctx: RequestContext): unknown {
  const body = asObject(ctx.body);
  for (const field of ['prefetch', 'lookup_from', 'shard_key']) {
    if (optional(body, field) !== undefined) throw notImplemented(`\`${field}\` in queries`);
  }
  const { vector } = parseQueryVector(optional(body, 'query'));
  const using = optional(body, 'using');
  const request: NearestRequest = {
    vector,
    namedVector: typeof using === 'string' && using !== '' ? using : undefined,
    filter: optFilter(body),
    limit: optUint(body, 'limit', 1) ?? 10,
    offset: optUint(body, 'offset') ?? 0,
    threshold: optNumber(body, 'score_threshold'),
    withPayload: parseWithPayload(optional(body, 'with_payload'), false),
    withVector: parseWithVector(optional(body, 'with_vector') ?? optional(body, 'with_vectors')),
  };
  return { points: nearest(collectionOf(ctx), request) };
}

/** Deprecated `/points/search`: gone from the 1.19 OpenAPI document but still served. */
function search(ctx: RequestContext): unknown {
  const body = asObject(ctx.body);
  const raw = required(body, 'vector');
  let vector: number[];
  let namedVector: string | undefined;
  if (isDenseVector(raw)) vector = raw;
  else if (isObject(raw) && typeof raw.name === 'string' && isDenseVector(raw.vector)) {
    vector = raw.vector;
    namedVector = raw.name === '' ? undefined : raw.name;
  } else throw noUntaggedVariant('NamedVectorStruct');
  const request: NearestRequest = {
    vector,
    namedVector,
    filter: optFilter(body),
    limit: asUint(required(body, 'limit'), 'limit', 1),
    offset: optUint(body, 'offset') ?? 0,
    threshold: optNumber(body, 'score_threshold'),
    withPayload: parseWithPayload(optional(body, 'with_payload'), false),
    withVector: parseWithVector(optional(body, 'with_vector')),
  };
  return nearest(collectionOf(ctx), request);
}

/** Guards the batch endpoints so a client reaching for them learns why they fail. */
function unsupported(what: string): (ctx: RequestContext) => unknown {
  return () => {
    throw notImplemented(what);
  };
}

export const pointRoutes: Route[] = [
  { method: 'PUT', pattern: '/collections/{collection_name}/points', body: true, handle: upsert },
  { method: 'POST', pattern: '/collections/{collection_name}/points', body: true, handle: retrieve },
  { method: 'GET', pattern: '/collections/{collection_name}/points/{id}', handle: getPoint },
  { method: 'POST', pattern: '/collections/{collection_name}/points/delete', body: true, handle: deletePoints },
  { method: 'POST', pattern: '/collections/{collection_name}/points/scroll', body: true, handle: scroll },
  { method: 'POST', pattern: '/collections/{collection_name}/points/count', body: true, handle: count },
  { method: 'POST', pattern: '/collections/{collection_name}/points/query', body: true, handle: query },
  { method: 'POST', pattern: '/collections/{collection_name}/points/search', body: true, handle: search },
  {
    method: 'POST',
    pattern: '/collections/{collection_name}/points/query/batch',
    handle: unsupported('batch queries'),
  },
  { method: 'POST', pattern: '/collections/{collection_name}/points/batch', handle: unsupported('batch updates') },
];
