/**
 * A rebuild writes every object into a new collection (`ALIAS--RUNID`) while the alias
 * keeps answering from the live one, and moves the alias only when the new collection is
 * known to be at least as good as the live one:
 * - before it starts, a rebuild narrowed by prefix, globs or size bounds is refused when
 *   the live collection holds points outside that scope (the switch would drop them);
 * - at its end, the switch happens only when the scan completed, something was indexed,
 *   nothing failed and the new collection holds every point the run wrote; otherwise the
 *   live index is left as it is, and the new collection is kept for inspection;
 * - points written to the live collection while the rebuild ran (another run, a keys job)
 *   are carried over into the new one, before the switch and once more after it, unless
 *   the rebuild wrote a newer version of the same point.
 */
import type { EmbedSettings } from './embed-job.js';
import { ConfigError } from './errors.js';
import type { RunState } from './runs.js';
import { inScope } from './scanner.js';
import type { ScanOptions } from './scanner.js';
import type { VectorStore } from './vector-store.js';

/** The collection an alias (or a plain collection of that name) serves now, if any. */
async function liveCollection(vectors: VectorStore, name: string): Promise<string | undefined> {
  return (await vectors.aliasTarget(name)) ?? ((await vectors.collectionExists(name)) ? name : undefined);
}

/**
 * Refuses a rebuild whose scope leaves out points the live collection holds: they would
 * vanish with the switch. A rebuild over the whole bucket, or over a scope that covers
 * every live point, goes ahead.
 */
export async function checkRebuildScope(
  vectors: VectorStore,
  collection: string,
  bucket: string,
  scope: Pick<ScanOptions, 'prefix' | 'include' | 'exclude' | 'minSize' | 'maxSize'>,
): Promise<void> {
  const live = await liveCollection(vectors, collection);
  if (live === undefined) return;
  const keep = inScope(scope);
  let outside = 0;
  let example: string | undefined;
  let offset: string | undefined;
  do {
    const page = await vectors.scroll(live, { chunk: 0 }, ['bucket', 'key', 'size', 'members'], offset);
    for (const p of page.points) {
      const members = Array.isArray(p.payload.members)
        ? (p.payload.members as unknown[]).filter((m): m is string => typeof m === 'string')
        : [];
      const keys = members.length > 0 ? members : [String(p.payload.key)];
      const size = typeof p.payload.size === 'number' ? p.payload.size : 0;
      // a unit's size is its members' together: judge each member by the key rules alone
      const within =
        p.payload.bucket === bucket && keys.every((k) => keep(k, members.length > 0 ? (scope.minSize ?? 0) : size));
      if (!within) {
        outside += 1;
        example ??= `${String(p.payload.bucket)}/${keys[0] ?? ''}`;
      }
    }
    offset = page.next;
  } while (offset !== undefined);
  if (outside > 0) {
    const narrowed = ['prefix', 'include', 'exclude', 'minSize', 'maxSize'].filter((k) => {
      const v = scope[k as keyof typeof scope];
      return v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0);
    });
    throw new ConfigError(
      narrowed.length > 0 ? `--${narrowed[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : '--bucket',
      `a rebuild replaces the whole collection "${collection}", and ${outside} of its live objects (for one, ${example}) are outside this rebuild's scope (s3://${bucket}/${scope.prefix ?? ''}${narrowed.length > 0 ? ` narrowed by ${narrowed.join(', ')}` : ''}): the switch would drop them. Rebuild the whole scope of the collection, or use an incremental run with --prune for a part of it`,
    );
  }
}

/** Why a finished rebuild must not replace the live index, or undefined when it may. */
async function refusal(vectors: VectorStore, run: RunState, target: string): Promise<string | undefined> {
  if (run.scanStatus !== 'complete') return `the scan did not complete (${run.scanError ?? run.scanStatus})`;
  const failures = run.counters.objectsFailed + run.counters.jobsFailed;
  if (failures > 0) return `${run.counters.objectsFailed} objects and ${run.counters.jobsFailed} jobs failed`;
  if (run.counters.objectsIndexed + run.counters.unchanged === 0) return 'no object was indexed';
  const held = await vectors.count(target);
  if (held < run.counters.points)
    return `${target} holds ${held} points, fewer than the ${run.counters.points} the run wrote`;
  return undefined;
}

/**
 * Copies into `to` the points of `from` indexed at or after `since`, except those `to`
 * holds in a version at least as new. Returns how many were copied.
 */
async function carryOver(vectors: VectorStore, from: string, to: string, since: string): Promise<number> {
  let copied = 0;
  let offset: string | undefined;
  do {
    const page = await vectors.scrollIndexedSince(from, since, offset);
    const theirs = new Map(
      (
        await vectors.retrieve(
          to,
          page.points.map((p) => p.id),
        )
      ).map((p) => [p.id, String(p.payload.indexed_at ?? '')]),
    );
    const newer = page.points.filter((p) => (theirs.get(p.id) ?? '') < p.payload.indexed_at);
    if (newer.length > 0) await vectors.upsert(to, newer);
    copied += newer.length;
    offset = page.next;
  } while (offset !== undefined);
  return copied;
}

/**
 * The end of a finished rebuild run: switches the alias when the new collection may
 * replace the live one, and says what it did (the run's `rebuild` note). `since` is when
 * the build began (for a retry-failed run of a rebuild, its first run's start).
 */
export async function finishRebuild(
  vectors: VectorStore,
  run: RunState,
  since = run.startedAt,
): Promise<{ switched: boolean; note: string }> {
  const target = (JSON.parse(run.settings ?? '{}') as Partial<EmbedSettings>).collection;
  if (!target) return { switched: false, note: 'not switched: the run has no target collection' };
  const why = await refusal(vectors, run, target);
  if (why)
    return {
      switched: false,
      note: `not switched: ${why}; the live index is untouched, ${target} is kept for inspection`,
    };
  const alias = run.collection;
  const old = await vectors.aliasTarget(alias);
  const live = old ?? ((await vectors.collectionExists(alias)) ? alias : undefined);
  let carried = 0;
  const secondPassFrom = new Date().toISOString();
  if (live !== undefined) carried += await carryOver(vectors, live, target, since);
  if (old === undefined && live !== undefined) {
    // the first rebuild of a plain collection: its name must become the alias
    await vectors.deleteCollection(alias);
  }
  await vectors.switchAlias(alias, target);
  if (old !== undefined && old !== target) {
    // what reached the old collection between the first pass and the switch
    carried += await carryOver(vectors, old, target, secondPassFrom);
    await vectors.deleteCollection(old);
  }
  return {
    switched: true,
    note: `alias ${alias} -> ${target}${old ? ` (dropped ${old})` : ''}${carried > 0 ? `; ${carried} points written meanwhile carried over` : ''}`,
  };
}
