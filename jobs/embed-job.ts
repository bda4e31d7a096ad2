/**
 * The `embed` job: what one job holds and how it is enqueued. Job data sits in Redis for
 * every queued job, so it holds references only (never bytes, vectors, URLs or secrets)
 * and objects as compact tuples.
 */
import type { JobsOptions } from 'bullmq';
import type { ScannedObject } from '../src/scanner.js';
import { shortHash } from '../src/ids.js';

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
}

/** [key, etag, size, lastModified epoch ms, modality letter]. */
export type ObjectTuple = [string, string, number, number, 't' | 'i' | 'v'];

export interface EmbedJobData {
  readonly v: 1;
  readonly runId: string;
  readonly bucket: string;
  readonly settings: EmbedSettings;
  readonly objects: ObjectTuple[];
}

export interface ObjectRef {
  readonly key: string;
  readonly etag: string;
  readonly size: number;
  readonly lastModified: string;
  readonly modality: 'text' | 'image' | 'video';
}

const LETTER = { text: 't', image: 'i', video: 'v' } as const;
const MODALITY = { t: 'text', i: 'image', v: 'video' } as const;

export function toTuple(o: ScannedObject): ObjectTuple {
  return [o.key, o.etag, o.size, Date.parse(o.lastModified), LETTER[o.modality]];
}

export function fromTuple([key, etag, size, lastModified, letter]: ObjectTuple): ObjectRef {
  return { key, etag, size, lastModified: new Date(lastModified).toISOString(), modality: MODALITY[letter] };
}

/** Hash of the settings that decide a vector (the params_hash of every point). */
export function paramsHash(s: EmbedSettings): string {
  return shortHash({ model: s.model, dimension: s.dimension, chunkTokens: s.chunkTokens ?? null, chunkOverlap: s.chunkOverlap, fps: s.fps ?? null, instruct: s.instruct ?? null });
}

/**
 * Same settings, bucket and objects (keys and ETags): same content id, whatever the run.
 * It is the job's BullMQ deduplication id, so the same work is not queued twice while it
 * is pending, and once it has finished a later run can queue it again.
 */
export function embedContentId(bucket: string, settings: EmbedSettings, objects: readonly ObjectTuple[]): string {
  return shortHash({ bucket, c: settings.collection, p: paramsHash(settings), m: settings.imageMode, o: objects.map((o) => [o[0], o[1]]) }, 32);
}

/** The job id: unique per run and content, so re-adding within a run is a no-op. */
export function embedJobId(runId: string, contentId: string): string {
  return `${runId}.${contentId}`;
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
