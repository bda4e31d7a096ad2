/**
 * The `embed` job: what one job holds and how it is enqueued. Job data sits in Redis for
 * every queued job, so it holds references only (never bytes, vectors, URLs or secrets).
 *
 * Format 2 (this version's): the run id, the objects packed (`packObjects`) and the units.
 * The run's bucket and settings are read from its run record (runs.ts `jobSettings`), once
 * per run and worker, so a long `instruct` is stored once, not in every job. Format 1 (the
 * versions before) carried the bucket and settings in every job and objects as tuples: a
 * worker of this version still runs such jobs (`resolveEmbedJob`), so a queue filled by
 * the old version drains after an upgrade.
 */
import type { JobsOptions } from 'bullmq';
import type { Composition, Entry } from './compose.js';
import { entryObjects } from './compose.js';
import { UnprocessableJobError } from './errors.js';
import { shortHash } from './ids.js';
import { classifyKey } from './media.js';
import type { ScannedObject } from './scanner.js';

export const EMBED_QUEUE = 'embed';

/** Everything that changes a vector besides the content; carried by every job of a run. */
export interface EmbedSettings {
  readonly collection: string;
  readonly model: string;
  readonly dimension: number;
  /** Largest text chunk in tokens (default: the model's limit). */
  readonly chunkTokens?: number | undefined;
  readonly chunkOverlap: number;
  readonly fps?: number | undefined;
  readonly instruct?: string | undefined;
  /** How images reach the API: base64 in the body, or a presigned URL it downloads. */
  readonly imageMode: 'inline' | 'url';
  readonly maxBodyBytes: number;
  /** Objects that make one vector together (multi_images groups, fused pairs); unset: one object, one vector. */
  readonly compose?: Composition | undefined;
  // stored as JSON in the run record (and in format-1 jobs): an undefined field is left out
}

/** [key, etag, size, lastModified epoch ms, modality letter]. */
export type ObjectTuple = [string, string, number, number, 't' | 'i' | 'v'];

/** A unit of a job: [g(roup) or f(used pair), its id, the indexes of its members in `objects`]. */
export type UnitTuple = ['g' | 'f', string, number[]];

/** Format 1 (before issue 16): everything in the job. */
export interface EmbedJobDataV1 {
  readonly v: 1;
  readonly runId: string;
  readonly bucket: string;
  readonly settings: EmbedSettings;
  readonly objects: ObjectTuple[];
  /** Objects not in a unit are embedded one by one. */
  readonly units?: UnitTuple[];
}

/** Format 2: the run id and packed objects; the bucket and settings are the run record's. */
export interface EmbedJobDataV2 {
  readonly v: 2;
  readonly runId: string;
  /** The objects, packed (packObjects). */
  readonly o: (string | number)[];
  readonly units?: UnitTuple[];
  /**
   * The job's number in its run, given as its page is queued (RunStore.intend): the run
   * counts the job's result once by it, in a bitmap (runs.ts). Absent in jobs of the versions
   * before, whose results are counted by job id.
   */
  readonly n?: number;
}

export type EmbedJobData = EmbedJobDataV1 | EmbedJobDataV2;

/** A job as a worker runs it, whatever its format. */
export interface ResolvedEmbedJob {
  readonly runId: string;
  readonly bucket: string;
  readonly settings: EmbedSettings;
  readonly objects: ObjectTuple[];
  readonly units?: UnitTuple[];
}

const MD5_HEX = /^[0-9a-f]{32}$/;

/**
 * Objects packed for a job, five values each, flat: the length of the key's prefix shared
 * with the previous key and the rest of the key (keys of a job are listed together and
 * share most of their path), the ETag (an MD5's 32 hex digits as 22 base64url characters,
 * any other ETag as `=` and itself), the size, and the modification time as a difference
 * in ms from the previous object's. The modality is not stored: it follows from the key
 * (media.ts), as it did at scan. Lossless: unpackObjects gives the tuples back.
 */
export function packObjects(objects: readonly ObjectTuple[]): (string | number)[] {
  const out: (string | number)[] = [];
  let prevKey = '';
  let prevTime = 0;
  for (const [key, etag, size, time] of objects) {
    let shared = 0;
    const max = Math.min(key.length, prevKey.length);
    while (shared < max && key.charCodeAt(shared) === prevKey.charCodeAt(shared)) shared++;
    // never split a surrogate pair: both halves stay in the stored rest
    if (shared > 0 && shared < key.length && /[\uDC00-\uDFFF]/.test(key[shared] ?? '')) shared--;
    out.push(
      shared,
      key.slice(shared),
      MD5_HEX.test(etag) ? Buffer.from(etag, 'hex').toString('base64url') : `=${etag}`,
      size,
      time - prevTime,
    );
    prevKey = key;
    prevTime = time;
  }
  return out;
}

export function unpackObjects(o: unknown): ObjectTuple[] {
  const bad = (why: string): never => {
    throw new UnprocessableJobError(`malformed embed job: its objects (o) ${why}`);
  };
  if (!Array.isArray(o) || o.length % 5 !== 0) return bad('are not a list of five values an object');
  const out: ObjectTuple[] = [];
  let prevKey = '';
  let prevTime = 0;
  for (let i = 0; i < o.length; i += 5) {
    const [shared, rest, etag, size, dt] = o.slice(i, i + 5) as unknown[];
    if (
      typeof shared !== 'number' ||
      !Number.isInteger(shared) ||
      shared < 0 ||
      shared > prevKey.length ||
      typeof rest !== 'string'
    )
      return bad(`hold a malformed key at object ${i / 5}`);
    if (typeof etag !== 'string' || typeof size !== 'number' || typeof dt !== 'number')
      return bad(`hold a malformed ETag, size or time at object ${i / 5}`);
    const key = prevKey.slice(0, shared) + rest;
    const kind = classifyKey(key);
    if (!kind) return bad(`hold ${JSON.stringify(key)}, which is no text, image or video key`);
    const fullEtag = etag.startsWith('=') ? etag.slice(1) : Buffer.from(etag, 'base64url').toString('hex');
    const time = prevTime + dt;
    out.push([key, fullEtag, size, time, LETTER[kind.modality]]);
    prevKey = key;
    prevTime = time;
  }
  return out;
}

/** A job's number in its run (format 2 since it has one), or undefined: counted by job id. */
export function jobNumber(data: unknown): number | undefined {
  const n = typeof data === 'object' && data !== null ? (data as { n?: unknown }).n : undefined;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** The objects of a job of either format. */
export function jobObjects(data: EmbedJobData): ObjectTuple[] {
  return data.v === 1 ? data.objects : unpackObjects(data.o);
}

/**
 * A job as the worker runs it: format 1 as it is; format 2 with its run's bucket and
 * settings (`settingsOf`). A job of an unknown format, or whose run record is gone, is
 * refused with the reason (it cannot be run as it was meant).
 */
export async function resolveEmbedJob(
  data: unknown,
  settingsOf: (runId: string) => Promise<{ bucket: string; settings: EmbedSettings } | undefined>,
): Promise<ResolvedEmbedJob> {
  const d = (typeof data === 'object' && data !== null ? data : {}) as Partial<EmbedJobDataV1> &
    Partial<Omit<EmbedJobDataV2, 'v'>> & { v?: unknown };
  if (typeof d.runId !== 'string' || d.runId === '')
    throw new UnprocessableJobError('malformed embed job: it has no run id (runId)');
  const units = d.units;
  if (d.v === 1) {
    if (!d.settings || typeof d.bucket !== 'string' || !Array.isArray(d.objects))
      throw new UnprocessableJobError('malformed embed job: format 1 needs bucket, settings and objects');
    return { runId: d.runId, bucket: d.bucket, settings: d.settings, objects: d.objects, ...(units ? { units } : {}) };
  }
  if (d.v !== 2)
    throw new UnprocessableJobError(
      `embed job of format ${JSON.stringify(d.v ?? null)}: this worker runs formats 1 and 2 (a newer version queued it? upgrade the workers)`,
    );
  const objects = unpackObjects(d.o);
  const run = await settingsOf(d.runId);
  if (!run)
    throw new UnprocessableJobError(
      `embed job of run ${d.runId}: the run's record (which holds its bucket and settings) is gone (expired after RUN_RETENTION_DAYS or deleted); index the objects again`,
    );
  return { runId: d.runId, bucket: run.bucket, settings: run.settings, objects, ...(units ? { units } : {}) };
}

export interface ObjectRef {
  readonly key: string;
  readonly etag: string;
  readonly size: number;
  readonly lastModified: string;
  readonly modality: 'text' | 'image' | 'video';
}

const LETTER = { text: 't', image: 'i', video: 'v' } as const;
const MODALITY: ReadonlyMap<string, ObjectRef['modality']> = new Map([
  ['t', 'text'],
  ['i', 'image'],
  ['v', 'video'],
]);

// the last time parsed: a listing's objects often share their LastModified (a page of a
// bulk upload, all of it), and a scan packs every object it queues
let lastParsed = { iso: '', ms: NaN };

export function toTuple(o: ScannedObject): ObjectTuple {
  if (o.lastModified !== lastParsed.iso) lastParsed = { iso: o.lastModified, ms: Date.parse(o.lastModified) };
  return [o.key, o.etag, o.size, lastParsed.ms, LETTER[o.modality]];
}

export function fromTuple([key, etag, size, lastModified, letter]: ObjectTuple): ObjectRef {
  // job data is whatever a Redis writer put there: a letter that is no modality is refused by name
  const modality = MODALITY.get(letter);
  if (modality === undefined)
    throw new UnprocessableJobError(
      `malformed embed job: object ${JSON.stringify(key)} has modality "${String(letter)}" (t, i or v)`,
    );
  return { key, etag, size, lastModified: new Date(lastModified).toISOString(), modality };
}

/** Hash of the settings that decide a vector (the params_hash of every point of one object). */
export function paramsHash(s: EmbedSettings): string {
  return shortHash({
    model: s.model,
    dimension: s.dimension,
    chunkTokens: s.chunkTokens ?? null,
    chunkOverlap: s.chunkOverlap,
    fps: s.fps ?? null,
    instruct: s.instruct ?? null,
  });
}

/**
 * The params_hash of a unit's points: the object settings and the composition rule (which
 * objects form a unit). What happens to unpaired objects is not in it: it changes no vector.
 */
export function unitParamsHash(s: EmbedSettings): string {
  // asked for every job a run queues (its content id), of the same settings: hashed once
  let known = unitHashes.get(s);
  if (known === undefined) {
    const c = s.compose;
    const rule = c?.kind === 'fused' ? { kind: c.kind, sidecar: c.sidecar } : c;
    known = c ? shortHash({ p: paramsHash(s), rule }) : paramsHash(s);
    unitHashes.set(s, known);
  }
  return known;
}
const unitHashes = new WeakMap<EmbedSettings, string>();

/** For each object of a job that belongs to a unit: the unit, as failures record it ([kind, id]). */
export function unitsByObject(data: {
  readonly units?: readonly UnitTuple[] | undefined;
}): Map<number, readonly ['g' | 'f', string]> {
  return new Map((data.units ?? []).flatMap(([kind, id, members]) => members.map((i) => [i, [kind, id] as const])));
}

/** The objects and units of one job's entries. */
export function jobContents(entries: readonly Entry[]): { objects: ObjectTuple[]; units?: UnitTuple[] } {
  const objects: ObjectTuple[] = [];
  const units: UnitTuple[] = [];
  for (const e of entries) {
    const first = objects.length;
    objects.push(...entryObjects(e).map(toTuple));
    if ('unit' in e)
      units.push([e.unit.kind === 'group' ? 'g' : 'f', e.unit.id, e.unit.members.map((_, i) => first + i)]);
  }
  return units.length > 0 ? { objects, units } : { objects };
}

/**
 * Same settings, bucket and objects (keys and ETags): same content id, whatever the run.
 * It is the job's BullMQ deduplication id, so the same work is not queued twice while it
 * is pending, and once it has finished a later run can queue it again.
 */
export function embedContentId(
  bucket: string,
  settings: EmbedSettings,
  objects: readonly ObjectTuple[],
  units?: readonly UnitTuple[],
): string {
  return shortHash(
    {
      bucket,
      c: settings.collection,
      p: unitParamsHash(settings),
      m: settings.imageMode,
      o: objects.map((o) => [o[0], o[1]]),
      ...(units ? { u: units } : {}),
    },
    32,
  );
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
  // the run record holds each job's result: a completed job is kept an hour, for Bull Board
  removeOnComplete: { age: 3600, count: 1000 },
  removeOnFail: false,
};
