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
import type { Slot, Target } from './assemble.js';
import { groupPointKey } from './compose.js';
import { pointId } from './ids.js';
import type { ObjectInfo } from './object-store.js';
import type { ParkedVectors } from './parked.js';
import type { PlannedInput } from './planned-input.js';
import type { ItemOutcome } from './runs.js';
import type { PointRecord, StoredPoint, VectorStore } from './vector-store.js';

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
  const byId = (points: StoredPoint[]): Map<string, Record<string, unknown>> =>
    new Map(points.map((p) => [p.id, p.payload]));
  // each object's first id once: it is asked for and then looked up in the answer
  const firstIds = objects.map((o) => pointId(bucket, o.key, 0));
  const first = byId(await vectors.retrieve(collection, firstIds));

  const needRest: { object: Pick<ObjectInfo, 'key' | 'etag'>; ids: string[] }[] = [];
  for (const [i, o] of objects.entries()) {
    const p = first.get(firstIds[i]!);
    if (!p) result.set(o.key, 'new');
    else if (p.etag !== o.etag || p.params_hash !== paramsHash) result.set(o.key, 'changed');
    else {
      const count = typeof p.chunk_count === 'number' ? p.chunk_count : 1;
      if (count <= 1) result.set(o.key, 'unchanged');
      else
        needRest.push({ object: o, ids: Array.from({ length: count - 1 }, (_, i) => pointId(bucket, o.key, i + 1)) });
    }
  }
  if (needRest.length > 0) {
    const rest = byId(
      await vectors.retrieve(
        collection,
        needRest.flatMap((n) => n.ids),
      ),
    );
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
export async function dropPoints(
  vectors: VectorStore,
  collection: string,
  bucket: string,
  keys: readonly string[],
): Promise<number> {
  if (keys.length === 0) return 0;
  const found = await vectors.retrieve(
    collection,
    keys.map((k) => pointId(bucket, k, 0)),
  );
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
    const page = await vectors.scroll(
      collection,
      { bucket, chunk: 0 },
      ['key', 'chunk_count', 'group', 'members', 'indexed_at'],
      offset,
    );
    // a group's points are stored under its group key, and it is under the prefix when its members are
    const pointKey = (p: StoredPoint): string =>
      typeof p.payload.group === 'string' ? groupPointKey(p.payload.group) : (p.payload.key as string);
    const firstKey = (p: StoredPoint): unknown =>
      Array.isArray(p.payload.members) ? p.payload.members[0] : p.payload.key;
    const candidates = page.points.filter((p) => {
      const k = firstKey(p);
      return typeof k === 'string' && k.startsWith(prefix) && String(p.payload.indexed_at ?? '') < before;
    });
    const present = await seen(candidates.map(pointKey));
    const gone = candidates.filter((_, i) => !present[i]);
    const ids = gone.flatMap((p) =>
      chunkIds(bucket, pointKey(p), typeof p.payload.chunk_count === 'number' ? p.payload.chunk_count : 1),
    );
    if (ids.length > 0) await vectors.delete(collection, ids);
    pruned += gone.length;
    offset = page.next;
  } while (offset !== undefined);
  return pruned;
}

/** The params hashes of a job's points: an object's, and a unit's (which adds its composition rule). */
export interface PointHashes {
  readonly object: string;
  readonly unit: string;
}

/** The point an input's vector becomes, and the ETag, params hash and chunk count that point carries. */
export function pointOf(
  bucket: string,
  input: PlannedInput,
  t: Target,
  hashes: PointHashes,
): { id: string; etag: string; paramsHash: string; chunkCount: number } {
  return {
    id: pointId(bucket, t.pointKey, t.part?.index ?? input.chunk),
    etag: t.unit ? String(t.unit.etag) : t.members[0]!.etag,
    paramsHash: t.unit ? hashes.unit : hashes.object,
    chunkCount: t.part?.count ?? input.chunkCount,
  };
}

export interface PaidDeps {
  readonly vectors: VectorStore;
  readonly parked?: ParkedVectors | undefined;
  /** Writes points (retrying while the store is away). */
  write(collection: string, records: PointRecord[]): Promise<void>;
  readonly log: { info(obj: object, msg?: string): void };
}

/** What one job is about to buy: its planned inputs, where each goes, and the run writing them. */
export interface PlannedWrites {
  readonly collection: string;
  readonly bucket: string;
  readonly runId: string;
  readonly inputs: readonly PlannedInput[];
  readonly targets: ReadonlyMap<string, Target>;
  readonly hashes: PointHashes;
  readonly indexedAt: string;
}

/**
 * The planned inputs whose points are already there for the content at hand (same ETag,
 * params hash and chunk count), chunk by chunk, so nothing is bought twice:
 * - written by this run: an earlier attempt of this job got that far before its worker
 *   died or gave it back (a text cut between two requests redoes only the chunks not
 *   written). Only this run's points count, so a `full` run still re-embeds;
 * - kept after Qdrant refused their write (parked.ts): written now, from the kept vector.
 */
export async function alreadyPaid(deps: PaidDeps, w: PlannedWrites): Promise<Set<PlannedInput>> {
  const planned = w.inputs.flatMap((input) => {
    const t = w.targets.get(input.source);
    return t ? [{ input, point: pointOf(w.bucket, input, t, w.hashes) }] : [];
  });
  const fits = (payload: Record<string, unknown>, point: ReturnType<typeof pointOf>): boolean =>
    payload.etag === point.etag && payload.params_hash === point.paramsHash && payload.chunk_count === point.chunkCount;
  const found = new Map(
    (
      await deps.vectors.retrieve(
        w.collection,
        planned.map((p) => p.point.id),
      )
    ).map((p) => [p.id, p.payload]),
  );
  const paid = new Set(
    planned
      .filter(({ point }) => found.get(point.id)?.run_id === w.runId && fits(found.get(point.id)!, point))
      .map((p) => p.input),
  );
  if (deps.parked) {
    const open = planned.filter((p) => !paid.has(p.input));
    const kept = new Map(
      (
        await deps.parked.find(
          w.collection,
          open.map((p) => p.point.id),
        )
      ).map((r) => [r.id, r]),
    );
    const usable = open.filter(({ point }) => kept.has(point.id) && fits(kept.get(point.id)!.payload, point));
    const records = usable.map(({ point }) => {
      const r = kept.get(point.id)!;
      return { ...r, payload: { ...r.payload, run_id: w.runId, indexed_at: w.indexedAt } };
    });
    if (records.length > 0) {
      await deps.write(w.collection, records);
      await deps.parked.drop(
        w.collection,
        records.map((r) => r.id),
      );
      deps.log.info({ collection: w.collection, points: records.length }, 'kept vectors written: not bought again');
      for (const p of usable) paid.add(p.input);
    }
  }
  return paid;
}

/**
 * Once the new points are written: the chunks (parts) a slot's old version had beyond its
 * new count, and all points of a slot now skipped (deleted, no longer indexable, or a unit
 * left with nothing to embed). A slot with a failed member keeps its old points.
 * `before`: chunk 0's id -> the chunk count stored before the job wrote anything.
 */
export function staleChunks(
  bucket: string,
  slots: readonly Slot[],
  before: ReadonlyMap<string, number>,
  sent: readonly PlannedInput[],
  targets: ReadonlyMap<string, Target>,
  outcomes: ReadonlyMap<string, ItemOutcome>,
): string[] {
  const nowCount = new Map<string, number>();
  for (const i of sent) {
    const t = targets.get(i.source);
    if (t) nowCount.set(t.pointKey, t.part ? t.part.count : i.chunkCount);
  }
  const stale: string[] = [];
  for (const slot of slots) {
    const oldCount = before.get(pointId(bucket, slot.pointKey, 0));
    if (oldCount === undefined || slot.members.some((m) => outcomes.get(m.ref.key)?.status === 'failed')) continue;
    stale.push(...chunkIds(bucket, slot.pointKey, oldCount, nowCount.get(slot.pointKey) ?? 0));
  }
  return stale;
}
