/**
 * The points a job writes: each embedded input's vector under its target's point id, with
 * the payload the README describes (an object's key, ETag, size, chunk; a unit's own fields
 * and its members). Beside vector-store.ts, which defines the payload.
 */
import type { Target } from './assemble.js';
import { pointId } from './ids.js';
import type { PointHashes } from './incremental.js';
import type { PlannedInput } from './planned-input.js';
import type { PointPayload, PointRecord } from './vector-store.js';

/** What every point of one job shares. */
export interface PointContext {
  readonly bucket: string;
  readonly model: string;
  readonly dimension: number;
  readonly runId: string;
  readonly indexedAt: string;
  readonly hashes: PointHashes;
}

export function pointRecord(ctx: PointContext, input: PlannedInput, vector: number[], t: Target): PointRecord {
  const chunk = t.part?.index ?? input.chunk;
  const common = {
    bucket: ctx.bucket,
    chunk,
    chunk_count: t.part?.count ?? input.chunkCount,
    model: ctx.model,
    dimension: ctx.dimension,
    indexed_at: ctx.indexedAt,
    run_id: ctx.runId,
  };
  const object = t.members[0]!;
  const payload: PointPayload = t.unit
    ? { ...common, ...t.unit, params_hash: ctx.hashes.unit }
    : {
        ...common,
        key: object.ref.key,
        etag: object.etag,
        size: object.version?.size ?? object.ref.size,
        last_modified: object.version?.lastModified ?? object.ref.lastModified,
        modality: input.kind,
        params_hash: ctx.hashes.object,
        ...(input.charStart !== undefined ? { char_start: input.charStart, char_end: input.charEnd } : {}),
        ...(object.fixup ? { fixup: object.fixup } : {}),
      };
  return { id: pointId(ctx.bucket, t.pointKey, chunk), vector, payload };
}
