// The stand-in's whole state, in memory.
//
// State: `collections` maps a collection name to its config, points and payload indexes;
// `aliases` maps an alias to a collection name. Every write to a collection takes the next
// number from its `lastOperationId`, which becomes the `operation_id` in the answer and the
// `version` of the points it touched, like the WAL sequence numbers of a one-shard Qdrant.
// Name resolution follows Qdrant: collection-scoped reads and writes resolve aliases, while
// create and delete act on real collection names only.

import { alreadyExists, collectionNotFound, notFound, wrongInput } from './errors.js';
import type { JsonObject } from './decode.js';
import type { PointId } from './ids.js';
import { getValues, parseJsonPath } from './json-path.js';
import type { Distance } from './vectors.js';

export interface StoredPoint {
  id: PointId;
  vector: number[];
  payload: Record<string, unknown>;
  version: number;
}

export interface PayloadIndex {
  dataType: string;
  params?: JsonObject;
}

export interface Collection {
  readonly name: string;
  size: number;
  distance: Distance;
  /** VectorParams fields other than size/distance, echoed back in the collection info. */
  vectorExtras: JsonObject;
  params: JsonObject;
  hnswConfig: JsonObject;
  optimizerConfig: JsonObject;
  walConfig: JsonObject;
  quantizationConfig: unknown;
  strictModeConfig: JsonObject;
  metadata?: JsonObject | undefined;
  points: Map<string, StoredPoint>;
  payloadIndexes: Map<string, PayloadIndex>;
  lastOperationId: number;
}

export type CollectionSpec = Omit<Collection, 'name' | 'points' | 'payloadIndexes' | 'lastOperationId'>;

export type AliasAction =
  | { create: { collection: string; alias: string } }
  | { delete: { alias: string } }
  | { rename: { from: string; to: string } };

// Defaults of a fresh single-node Qdrant 1.19 (config/config.yaml).
export const DEFAULT_HNSW: JsonObject = {
  m: 16,
  ef_construct: 100,
  full_scan_threshold: 10000,
  max_indexing_threads: 0,
  on_disk: false,
};
export const DEFAULT_OPTIMIZERS: JsonObject = {
  deleted_threshold: 0.2,
  vacuum_min_vector_number: 1000,
  default_segment_number: 0,
  max_segment_size: null,
  memmap_threshold: null,
  indexing_threshold: 10000,
  flush_interval_sec: 5,
  max_optimization_threads: null,
};
export const DEFAULT_WAL: JsonObject = { wal_capacity_mb: 32, wal_segments_ahead: 0, wal_retain_closed: 1 };

export class Store {
  private readonly collections = new Map<string, Collection>();
  private readonly aliases = new Map<string, string>();

  names(): string[] {
    return [...this.collections.keys()].sort();
  }

  /** Collection by name or alias; 404 names the collection the alias points to, as Qdrant does. */
  get(nameOrAlias: string): Collection {
    const name = this.aliases.get(nameOrAlias) ?? nameOrAlias;
    const collection = this.collections.get(name);
    if (collection === undefined) throw collectionNotFound(name);
    return collection;
  }

  exists(nameOrAlias: string): boolean {
    return this.collections.has(this.aliases.get(nameOrAlias) ?? nameOrAlias);
  }

  create(name: string, spec: CollectionSpec): void {
    if (this.collections.has(name)) throw alreadyExists(`Collection \`${name}\` already exists!`);
    if (this.aliases.has(name)) {
      throw wrongInput(`Can't create collection with name ${name}. Alias with the same name already exists`);
    }
    this.collections.set(name, { ...spec, name, points: new Map(), payloadIndexes: new Map(), lastOperationId: -1 });
  }

  /** Deleting by alias name deletes nothing (Qdrant answers `false`); aliases of the collection go too. */
  delete(name: string): boolean {
    for (const [alias, target] of this.aliases) if (target === name) this.aliases.delete(alias);
    return this.collections.delete(name);
  }

  nextOperationId(collection: Collection): number {
    collection.lastOperationId += 1;
    return collection.lastOperationId;
  }

  /**
   * Applies alias actions in order, as Qdrant's `update_aliases` does. Readers never see a
   * half-applied list (nothing else runs in between), but like Qdrant there is no rollback:
   * actions before a failing one stay applied.
   */
  updateAliases(actions: readonly AliasAction[]): void {
    for (const action of actions) {
      if ('create' in action) {
        const { collection, alias } = action.create;
        if (!this.collections.has(collection)) throw collectionNotFound(collection);
        if (this.collections.has(alias)) throw alreadyExists(`Collection \`${alias}\` already exists!`);
        this.aliases.set(alias, collection);
      } else if ('delete' in action) {
        this.aliases.delete(action.delete.alias);
      } else {
        const target = this.aliases.get(action.rename.from);
        if (target === undefined) throw notFound(`Alias ${action.rename.from} does not exists!`);
        this.aliases.delete(action.rename.from);
        this.aliases.set(action.rename.to, target);
      }
    }
  }

  /** Aliases whose target is exactly `collectionName` (Qdrant does not resolve it first). */
  aliasesOf(collectionName: string): Array<{ alias_name: string; collection_name: string }> {
    return [...this.aliases]
      .filter(([, target]) => target === collectionName)
      .map(([alias]) => ({ alias_name: alias, collection_name: collectionName }))
      .sort((a, b) => a.alias_name.localeCompare(b.alias_name));
  }

  allAliases(): Array<{ alias_name: string; collection_name: string }> {
    return this.names().flatMap((name) => this.aliasesOf(name));
  }
}

const INDEX_TYPE_CHECKS: Record<string, (v: unknown) => boolean> = {
  keyword: (v) => typeof v === 'string',
  text: (v) => typeof v === 'string',
  uuid: (v) => typeof v === 'string',
  datetime: (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v)),
  integer: (v) => typeof v === 'number' && Number.isInteger(v),
  float: (v) => typeof v === 'number',
  bool: (v) => typeof v === 'boolean',
  geo: (v) => typeof v === 'object' && v !== null && 'lat' in v && 'lon' in v,
};

/** `GET /collections/{c}` result. */
export function collectionInfo(c: Collection): JsonObject {
  const payloadSchema: JsonObject = {};
  for (const [field, index] of c.payloadIndexes) {
    const path = parseJsonPath(field);
    const fits = INDEX_TYPE_CHECKS[index.dataType] ?? (() => false);
    let points = 0;
    for (const p of c.points.values()) {
      const values = getValues(p.payload, path).flatMap((v) => (Array.isArray(v) ? v : [v]));
      if (values.some(fits)) points += 1;
    }
    payloadSchema[field] = { data_type: index.dataType, ...(index.params ? { params: index.params } : {}), points };
  }
  return {
    status: 'green',
    optimizer_status: 'ok',
    indexed_vectors_count: 0,
    points_count: c.points.size,
    segments_count: 1,
    config: {
      params: { vectors: { size: c.size, distance: c.distance, ...c.vectorExtras }, ...c.params },
      hnsw_config: c.hnswConfig,
      optimizer_config: c.optimizerConfig,
      wal_config: c.walConfig,
      quantization_config: c.quantizationConfig ?? null,
      strict_mode_config: c.strictModeConfig,
      ...(c.metadata ? { metadata: c.metadata } : {}),
    },
    payload_schema: payloadSchema,
  };
}
