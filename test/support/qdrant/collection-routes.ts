// Service, collection, alias and payload-index endpoints.

import { asArray, asObject, asString, asUint, isObject, optional, required, type JsonObject } from './decode.js';
import { noUntaggedVariant, notImplemented } from './errors.js';
import { json, parseWait, text, updateResult } from './http.js';
import { parseJsonPath } from './json-path.js';
import { param, type RequestContext, type Route } from './routes.js';
import {
  DEFAULT_HNSW,
  DEFAULT_OPTIMIZERS,
  DEFAULT_WAL,
  collectionInfo,
  type AliasAction,
  type CollectionSpec,
} from './store.js';
import { DISTANCES, type Distance } from './vectors.js';

export const QDRANT_VERSION = '1.19.0';

const PAYLOAD_TYPES = ['keyword', 'integer', 'float', 'geo', 'text', 'bool', 'datetime', 'uuid'];

function optObject(obj: JsonObject, field: string): JsonObject | undefined {
  const value = optional(obj, field);
  return value === undefined ? undefined : asObject(value);
}

function parseVectorParams(raw: unknown): { size: number; distance: Distance; extras: JsonObject } {
  if (!isObject(raw)) throw noUntaggedVariant('VectorsConfig');
  if (!('size' in raw) && !('distance' in raw) && Object.values(raw).every(isObject)) {
    throw notImplemented('named vectors (the stand-in supports one unnamed dense vector)');
  }
  const { size, distance, ...extras } = raw;
  if (typeof distance !== 'string' || !DISTANCES.includes(distance as Distance)) {
    throw noUntaggedVariant('VectorsConfig');
  }
  if (extras.multivector_config !== undefined && extras.multivector_config !== null) {
    throw notImplemented('multivectors');
  }
  return { size: asUint(size, 'vectors.size', 1, 65536), distance: distance as Distance, extras };
}

function createCollection(ctx: RequestContext): boolean {
  const body = asObject(ctx.body);
  const vectors = optional(body, 'vectors');
  if (vectors === undefined) throw notImplemented('collections without a dense vector');
  if (optional(body, 'sparse_vectors') !== undefined) throw notImplemented('sparse vectors');
  const { size, distance, extras } = parseVectorParams(vectors);
  const params: JsonObject = {
    shard_number: 1,
    replication_factor: 1,
    write_consistency_factor: 1,
    on_disk_payload: true,
  };
  for (const field of ['shard_number', 'replication_factor', 'write_consistency_factor']) {
    const value = optional(body, field);
    if (value !== undefined) params[field] = asUint(value, field, 1);
  }
  if (typeof body.on_disk_payload === 'boolean') params.on_disk_payload = body.on_disk_payload;
  const spec: CollectionSpec = {
    size,
    distance,
    vectorExtras: extras,
    params,
    hnswConfig: { ...DEFAULT_HNSW, ...optObject(body, 'hnsw_config') },
    optimizerConfig: { ...DEFAULT_OPTIMIZERS, ...optObject(body, 'optimizers_config') },
    walConfig: { ...DEFAULT_WAL, ...optObject(body, 'wal_config') },
    quantizationConfig: optional(body, 'quantization_config') ?? null,
    strictModeConfig: { enabled: false, ...optObject(body, 'strict_mode_config') },
    metadata: optObject(body, 'metadata'),
  };
  ctx.store.create(param(ctx, 'collection_name'), spec);
  return true;
}

function updateCollection(ctx: RequestContext): boolean {
  const body = asObject(ctx.body);
  if (optional(body, 'sparse_vectors') !== undefined) throw notImplemented('sparse vectors');
  // Parse everything before touching the collection: a bad diff must leave it unchanged.
  const optimizers = optObject(body, 'optimizers_config');
  const hnsw = optObject(body, 'hnsw_config');
  const params = optObject(body, 'params');
  const strict = optObject(body, 'strict_mode_config');
  const metadata = optObject(body, 'metadata');
  const vectors = optObject(body, 'vectors');
  const quantization = optional(body, 'quantization_config');
  const c = ctx.store.get(param(ctx, 'collection_name'));
  if (optimizers) c.optimizerConfig = { ...c.optimizerConfig, ...optimizers };
  if (hnsw) c.hnswConfig = { ...c.hnswConfig, ...hnsw };
  if (params) c.params = { ...c.params, ...params };
  if (strict) c.strictModeConfig = { ...c.strictModeConfig, ...strict };
  if (metadata) c.metadata = { ...c.metadata, ...metadata };
  if (quantization !== undefined) c.quantizationConfig = quantization === 'Disabled' ? null : quantization;
  if (vectors) {
    // VectorsConfigDiff is keyed by vector name; "" is the unnamed vector.
    const diff = vectors[''];
    if (isObject(diff)) c.vectorExtras = { ...c.vectorExtras, ...diff };
  }
  return true;
}

function parseAliasAction(raw: unknown): AliasAction {
  if (!isObject(raw)) throw noUntaggedVariant('AliasOperations');
  if (isObject(raw.create_alias)) {
    const a = raw.create_alias;
    return {
      create: { collection: asString(required(a, 'collection_name')), alias: asString(required(a, 'alias_name')) },
    };
  }
  if (isObject(raw.delete_alias)) return { delete: { alias: asString(required(raw.delete_alias, 'alias_name')) } };
  if (isObject(raw.rename_alias)) {
    const r = raw.rename_alias;
    return { rename: { from: asString(required(r, 'old_alias_name')), to: asString(required(r, 'new_alias_name')) } };
  }
  throw noUntaggedVariant('AliasOperations');
}

function createIndex(ctx: RequestContext): unknown {
  const body = asObject(ctx.body);
  const field = asString(required(body, 'field_name'));
  parseJsonPath(field);
  const schema = optional(body, 'field_schema');
  if (schema === undefined) throw notImplemented('payload indexes without an explicit `field_schema`');
  const dataType = isObject(schema) ? schema.type : schema;
  if (typeof dataType !== 'string' || !PAYLOAD_TYPES.includes(dataType)) {
    throw noUntaggedVariant('PayloadFieldSchema');
  }
  const wait = parseWait(ctx.query);
  const c = ctx.store.get(param(ctx, 'collection_name'));
  c.payloadIndexes.set(field, isObject(schema) ? { dataType, params: schema } : { dataType });
  return updateResult(ctx.store.nextOperationId(c), wait);
}

function deleteIndex(ctx: RequestContext): unknown {
  const wait = parseWait(ctx.query);
  const c = ctx.store.get(param(ctx, 'collection_name'));
  c.payloadIndexes.delete(param(ctx, 'field_name'));
  return updateResult(ctx.store.nextOperationId(c), wait);
}

export const collectionRoutes: Route[] = [
  {
    method: 'GET',
    pattern: '/',
    raw: () => json(200, { title: 'qdrant - vector search engine', version: QDRANT_VERSION, commit: 'qdrant-standin' }),
  },
  { method: 'GET', pattern: '/healthz', raw: () => text(200, 'healthz check passed') },
  { method: 'GET', pattern: '/livez', raw: () => text(200, 'healthz check passed') },
  { method: 'GET', pattern: '/readyz', raw: () => text(200, 'all shards are ready') },
  {
    method: 'GET',
    pattern: '/collections',
    handle: (ctx) => ({ collections: ctx.store.names().map((name) => ({ name })) }),
  },
  { method: 'GET', pattern: '/aliases', handle: (ctx) => ({ aliases: ctx.store.allAliases() }) },
  {
    method: 'POST',
    pattern: '/collections/aliases',
    body: true,
    handle: (ctx) => {
      const actions = asArray(required(asObject(ctx.body), 'actions')).map(parseAliasAction);
      ctx.store.updateAliases(actions);
      return true;
    },
  },
  {
    method: 'GET',
    pattern: '/collections/{collection_name}',
    handle: (ctx) => collectionInfo(ctx.store.get(param(ctx, 'collection_name'))),
  },
  { method: 'PUT', pattern: '/collections/{collection_name}', body: true, handle: createCollection },
  { method: 'PATCH', pattern: '/collections/{collection_name}', body: true, handle: updateCollection },
  {
    method: 'DELETE',
    pattern: '/collections/{collection_name}',
    handle: (ctx) => ctx.store.delete(param(ctx, 'collection_name')),
  },
  {
    method: 'GET',
    pattern: '/collections/{collection_name}/exists',
    handle: (ctx) => ({ exists: ctx.store.exists(param(ctx, 'collection_name')) }),
  },
  {
    method: 'GET',
    pattern: '/collections/{collection_name}/aliases',
    handle: (ctx) => ({ aliases: ctx.store.aliasesOf(param(ctx, 'collection_name')) }),
  },
  { method: 'PUT', pattern: '/collections/{collection_name}/index', body: true, handle: createIndex },
  { method: 'DELETE', pattern: '/collections/{collection_name}/index/{field_name}', handle: deleteIndex },
];
