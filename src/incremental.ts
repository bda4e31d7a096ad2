/**
 * What a re-run must redo, found from the deterministic point ids alone, so the check
 * costs O(listing page), not O(collection):
 * - an object is unchanged when its chunk 0 exists with the same ETag and params hash and
 *   every chunk it announces (`chunk_count`) exists with that ETag too; a crash between
 *   chunks leaves the object incomplete, so it is redone;
 * - after a completed scan, `prune` deletes the points of the objects under the prefix
 *   that the scan did not see (the object is gone), and nothing else;
 * - a unit (compose.ts) is checked the same way, under its point key and unit ETag.
 */
import { groupPointKey } from './compose.js';
import { pointId } from './ids.js';
import type { ObjectInfo } from './object-store.js';
import type { StoredPoint, VectorStore } from './vector-store.js';

export type Change = 'new' | 'changed' | 'unchanged';

export async function classifyChanges(
  vectors: VectorStore,
  collection: string,
  bucket: string,
  objects: readonly Pick<ObjectInfo, 'key' | 'etag'>[],
  paramsHash: string,
): Promise<Map<string, Change>> {
  const result = new Map<string, Change>();
  if (objects.length === 0) return result;
  const byId = (points: StoredPoint[]): Map<string, Record<string, unknown>> => new Map(points.map((p) => [p.id, p.payload]));
  const first = byId(await vectors.retrieve(collection, objects.map((o) => pointId(bucket, o.key, 0))));

  const needRest: { object: Pick<ObjectInfo, 'key' | 'etag'>; ids: string[] }[] = [];
  for (const o of objects) {
    const p = first.get(pointId(bucket, o.key, 0));
    if (!p) result.set(o.key, 'new');
    else if (p.etag !== o.etag || p.params_hash !== paramsHash) result.set(o.key, 'changed');
    else {
      const count = typeof p.chunk_count === 'number' ? p.chunk_count : 1;
      if (count <= 1) result.set(o.key, 'unchanged');
      else needRest.push({ object: o, ids: Array.from({ length: count - 1 }, (_, i) => pointId(bucket, o.key, i + 1)) });
    }
  }
  if (needRest.length > 0) {
    const rest = byId(await vectors.retrieve(collection, needRest.flatMap((n) => n.ids)));
    for (const { object, ids } of needRest) {
      const complete = ids.every((id) => rest.get(id)?.etag === object.etag);
      result.set(object.key, complete ? 'unchanged' : 'changed');
    }
  }
  return result;
}

/** Ids of every chunk of a key, given how many chunks its points announce. */
export function chunkIds(bucket: string, key: string, count: number, from = 0): string[] {
  return Array.from({ length: Math.max(0, count - from) }, (_, i) => pointId(bucket, key, from + i));
}

/** Deletes every point of these keys (their chunk 0 tells how many there are); returns how many keys had points. */
export async function dropPoints(vectors: VectorStore, collection: string, bucket: string, keys: readonly string[]): Promise<number> {
  if (keys.length === 0) return 0;
  const found = await vectors.retrieve(collection, keys.map((k) => pointId(bucket, k, 0)));
  const byId = new Map(found.map((p) => [p.id, p.payload]));
  const ids = keys.flatMap((k) => {
    const p = byId.get(pointId(bucket, k, 0));
    return p ? chunkIds(bucket, k, typeof p.chunk_count === 'number' ? p.chunk_count : 1) : [];
  });
  if (ids.length > 0) await vectors.delete(collection, ids);
  return found.length;
}

/**
 * Deletes the points of objects under `prefix` in `bucket` for which `seen` says no and
 * that were indexed before `before` (the scan's start: a point indexed since was written by
 * a concurrent run or a keys job, for an object this scan may have listed before it existed).
 * Walks chunk-0 points of the bucket page by page; returns the number of objects pruned.
 */
export async function prune(
  vectors: VectorStore,
  collection: string,
  bucket: string,
  prefix: string,
  before: string,
  seen: (keys: string[]) => Promise<boolean[]>,
): Promise<number> {
  let pruned = 0;
  let offset: string | undefined;
  do {
    const page = await vectors.scroll(collection, { bucket, chunk: 0 }, ['key', 'chunk_count', 'group', 'members', 'indexed_at'], offset);
    // a group's points are stored under its group key, and it is under the prefix when its members are
    const pointKey = (p: StoredPoint): string => (typeof p.payload.group === 'string' ? groupPointKey(p.payload.group) : (p.payload.key as string));
    const firstKey = (p: StoredPoint): unknown => (Array.isArray(p.payload.members) ? p.payload.members[0] : p.payload.key);
    const candidates = page.points.filter((p) => {
      const k = firstKey(p);
      return typeof k === 'string' && k.startsWith(prefix) && String(p.payload.indexed_at ?? '') < before;
    });
    const present = await seen(candidates.map(pointKey));
    const gone = candidates.filter((_, i) => !present[i]);
    const ids = gone.flatMap((p) => chunkIds(bucket, pointKey(p), typeof p.payload.chunk_count === 'number' ? p.payload.chunk_count : 1));
    if (ids.length > 0) await vectors.delete(collection, ids);
    pruned += gone.length;
    offset = page.next;
  } while (offset !== undefined);
  return pruned;
}
