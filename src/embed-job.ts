/**
 * The `embed` job: what one job holds and how it is enqueued. Job data sits in Redis for
 * every queued job, so it holds references only (never bytes, vectors, URLs or secrets)
 * and objects as compact tuples.
 */
import type { JobsOptions } from 'bullmq';
import type { Composition, Entry } from './compose.js';
import { entryObjects } from './compose.js';
import { UnprocessableJobError } from './errors.js';
import { shortHash } from './ids.js';
import type { ScannedObject } from './scanner.js';

export const EMBED_QUEUE = 'embed';

/** Everything that changes a vector besides the content; carried by every job of a run. */
export interface EmbedSettings {
  readonly collection: string;
  readonly model: string;
  readonly dimension: number;
  /** Largest text chunk in tokens (default: the model's limit). */
  readonly chunkTokens?: number;
  readonly chunkOverlap: number;
  readonly fps?: number;
  readonly instruct?: string;
  /** How images reach the API: base64 in the body, or a presigned URL it downloads. */
  readonly imageMode: 'inline' | 'url';
  readonly maxBodyBytes: number;
  /** Objects that make one vector together (multi_images groups, fused pairs); unset: one object, one vector. */
  readonly compose?: Composition;
}

/** [key, etag, size, lastModified epoch ms, modality letter]. */
export type ObjectTuple = [string, string, number, number, 't' | 'i' | 'v'];

/** A unit of a job: [g(roup) or f(used pair), its id, the indexes of its members in `objects`]. */
export type UnitTuple = ['g' | 'f', string, number[]];

export interface EmbedJobData {
  readonly v: 1;
  readonly runId: string;
  readonly bucket: string;
  readonly settings: EmbedSettings;
  readonly objects: ObjectTuple[];
  /** Objects not in a unit are embedded one by one. */
  readonly units?: UnitTuple[];
}

export interface ObjectRef {
  readonly key: string;
  readonly etag: string;
  readonly size: number;
  readonly lastModified: string;
  readonly modality: 'text' | 'image' | 'video';
}

const LETTER = { text: 't', image: 'i', video: 'v' } as const;
const MODALITY: ReadonlyMap<string, ObjectRef['modality']> = new Map([['t', 'text'], ['i', 'image'], ['v', 'video']]);

export function toTuple(o: ScannedObject): ObjectTuple {
  return [o.key, o.etag, o.size, Date.parse(o.lastModified), LETTER[o.modality]];
}

export function fromTuple([key, etag, size, lastModified, letter]: ObjectTuple): ObjectRef {
  // job data is whatever a Redis writer put there: a letter that is no modality is refused by name
  const modality = MODALITY.get(letter);
  if (modality === undefined) throw new UnprocessableJobError(`malformed embed job: object ${JSON.stringify(key)} has modality "${String(letter)}" (t, i or v)`);
  return { key, etag, size, lastModified: new Date(lastModified).toISOString(), modality };
}

/** Hash of the settings that decide a vector (the params_hash of every point of one object). */
export function paramsHash(s: EmbedSettings): string {
  return shortHash({ model: s.model, dimension: s.dimension, chunkTokens: s.chunkTokens ?? null, chunkOverlap: s.chunkOverlap, fps: s.fps ?? null, instruct: s.instruct ?? null });
}

/**
 * The params_hash of a unit's points: the object settings and the composition rule (which
 * objects form a unit). What happens to unpaired objects is not in it: it changes no vector.
 */
export function unitParamsHash(s: EmbedSettings): string {
  const c = s.compose;
  if (!c) return paramsHash(s);
  const rule = c.kind === 'fused' ? { kind: c.kind, sidecar: c.sidecar } : c;
  return shortHash({ p: paramsHash(s), rule });
}

/** For each object of a job that belongs to a unit: the unit, as failures record it ([kind, id]). */
export function unitsByObject(data: Pick<EmbedJobData, 'units'>): Map<number, readonly ['g' | 'f', string]> {
  return new Map((data.units ?? []).flatMap(([kind, id, members]) => members.map((i) => [i, [kind, id] as const])));
}

/** The objects and units of one job's entries. */
export function jobContents(entries: readonly Entry[]): { objects: ObjectTuple[]; units?: UnitTuple[] } {
  const objects: ObjectTuple[] = [];
  const units: UnitTuple[] = [];
  for (const e of entries) {
    const first = objects.length;
    objects.push(...entryObjects(e).map(toTuple));
    if ('unit' in e) units.push([e.unit.kind === 'group' ? 'g' : 'f', e.unit.id, e.unit.members.map((_, i) => first + i)]);
  }
  return units.length > 0 ? { objects, units } : { objects };
}

/**
 * Same settings, bucket and objects (keys and ETags): same content id, whatever the run.
 * It is the job's BullMQ deduplication id, so the same work is not queued twice while it
 * is pending, and once it has finished a later run can queue it again.
 */
export function embedContentId(bucket: string, settings: EmbedSettings, objects: readonly ObjectTuple[], units?: readonly UnitTuple[]): string {
  return shortHash({ bucket, c: settings.collection, p: unitParamsHash(settings), m: settings.imageMode, o: objects.map((o) => [o[0], o[1]]), ...(units ? { u: units } : {}) }, 32);
}

/** The job id: unique per run and content, so re-adding within a run is a no-op. */
export function embedJobId(runId: string, contentId: string): string {
  return `${runId}.${contentId}`;
}

/** The run that added a job, from its id (run ids hold no dot). */
export function runOfJobId(jobId: string): string {
  return jobId.slice(0, jobId.indexOf('.'));
}

/**
 * Default options of embed jobs. Attempts cover transient failures (network, 5xx) with
 * exponential backoff; completed jobs are trimmed so Redis does not fill up, failed
 * ones are kept until retried or cleared.
 */
export const EMBED_JOB_OPTIONS: JobsOptions = {
  attempts: 6,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { age: 24 * 3600, count: 10_000 },
  removeOnFail: false,
};
