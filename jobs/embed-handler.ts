/**
 * The embed job, step by step: fetch the job's objects -> prepare inputs -> plan requests
 * within the model's limits -> embed -> upsert points -> record every object's outcome.
 *
 * Built from its dependencies (`createEmbedHandler({ store, embedder, vectors, ... })`);
 * it constructs no client, so tests run it against fakes or real servers alike.
 * Transient failures are thrown (BullMQ retries the job); an input the API refuses is
 * isolated by splitting its request in halves, so the rest of the request is indexed.
 */
import pLimit from 'p-limit';
import pRetry from 'p-retry';
import type { Embedder } from '../src/embedder.js';
import { pointId } from '../src/ids.js';
import { chunkIds } from '../src/incremental.js';
import { classifyKey } from '../src/media.js';
import { resolveModel } from '../src/models.js';
import type { ModelOverrides, ModelSpec } from '../src/models.js';
import { fixImage } from '../src/fixup.js';
import type { FixupRecord } from '../src/fixup.js';
import { ObjectStoreError } from '../src/object-store.js';
import type { ObjectStore } from '../src/object-store.js';
import { planRequests } from '../src/planner.js';
import type { PipelineMetrics } from '../src/metrics.js';
import { OPEN_GATE } from '../src/rate-limit.js';
import type { RequestGate } from '../src/rate-limit.js';
import type { PlannedInput, PlanOptions, PreparedInput } from '../src/planner.js';
import { prepareImage, prepareText, prepareVideo } from '../src/prepare.js';
import type { ItemOutcome, JobResult, RunStore } from '../src/runs.js';
import type { TokenCounter } from '../src/tokens.js';
import type { PointPayload, PointRecord, VectorStore } from '../src/vector-store.js';
import { ApiCaller } from './api-call.js';
import { fromTuple, paramsHash } from './embed-job.js';
import type { EmbedJobData, ObjectRef } from './embed-job.js';

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface EmbedHandlerDeps {
  readonly store: ObjectStore;
  readonly embedder: Embedder;
  readonly vectors: VectorStore;
  readonly tokens: TokenCounter;
  readonly runs: RunStore;
  readonly log: Logger;
  /** The shared rate limiter. @defaultValue no limit */
  readonly gate?: RequestGate;
  /** Attempts of one API request for transient failures, and the first backoff. */
  readonly apiAttempts?: number;
  readonly apiBackoffMs?: number;
  /** Attempts of a Qdrant write before the job fails (vectors already paid for are worth waiting for). @defaultValue 8 */
  readonly upsertAttempts?: number;
  readonly metrics?: PipelineMetrics;
  readonly modelOverrides?: ModelOverrides;
  /** Objects fetched at once within a job. @defaultValue 8 */
  readonly fetchConcurrency?: number;
  /** Lifetime of presigned URLs: long enough for the provider to download. @defaultValue 3600 */
  readonly presignSeconds?: number;
  readonly now?: () => Date;
}

export interface EmbedJob {
  readonly id?: string | undefined;
  readonly data: EmbedJobData;
}

interface Prepared {
  readonly ref: ObjectRef;
  readonly etag: string;
  readonly input?: PreparedInput;
  readonly outcome?: ItemOutcome;
  /** What was done to an image to make it acceptable (recorded in its point's payload). */
  readonly fixup?: FixupRecord;
}

/** First bytes of a video, enough to recognise its container. */
const VIDEO_HEAD_BYTES = 64;

export function createEmbedHandler(deps: EmbedHandlerDeps): (job: EmbedJob) => Promise<JobResult> {
  const limit = pLimit(deps.fetchConcurrency ?? 8);
  const presignSeconds = deps.presignSeconds ?? 3600;
  const now = deps.now ?? (() => new Date());

  async function prepare(bucket: string, ref: ObjectRef, spec: ModelSpec, imageMode: 'inline' | 'url', maxBodyBytes: number): Promise<Prepared> {
    const skip = (code: string, reason: string, etag = ref.etag): Prepared => ({ ref, etag, outcome: { status: 'skipped', code, reason } });
    try {
      if (ref.modality === 'video') {
        const kind = classifyKey(ref.key);
        if (kind?.modality !== 'video') return skip('unsupported-type', 'not a video key');
        const head = await deps.store.get(bucket, ref.key, [0, VIDEO_HEAD_BYTES - 1]);
        // presigned at call time, never stored: it lives only in this request's body
        const url = await deps.store.presign(bucket, ref.key, presignSeconds);
        const r = prepareVideo(ref.key, ref.size, kind.format, url, head.bytes);
        return 'failure' in r ? skip(r.failure.code, r.failure.reason, head.etag) : { ref, etag: head.etag, input: r.ok };
      }
      const object = await deps.store.get(bucket, ref.key);
      if (ref.modality === 'text') {
        const r = prepareText(ref.key, object.bytes, deps.tokens);
        return 'failure' in r ? skip(r.failure.code, r.failure.reason, object.etag) : { ref, etag: object.etag, input: r.ok };
      }
      // an image the model cannot take as it is is converted or downscaled (a copy: the
      // object itself is never changed); URL mode can only send the object as it is
      const fixed = await fixImage(object.bytes, spec, imageMode === 'inline' ? { maxDataUriBytes: maxBodyBytes - 1024 } : {});
      if ('skip' in fixed) return skip(fixed.skip.code, fixed.skip.reason, object.etag);
      if (fixed.fixup && imageMode === 'url') {
        return skip('needs-fixup', `${fixed.fixup.actions.join(', ')} would be needed, which URL mode cannot send (use IMAGE_MODE=inline)`, object.etag);
      }
      const payload = imageMode === 'url' ? { kind: 'url' as const, url: await deps.store.presign(bucket, ref.key, presignSeconds) } : { kind: 'inline' as const, data: fixed.bytes };
      const r = prepareImage(ref.key, fixed.bytes, payload);
      if ('failure' in r) return skip(r.failure.code, r.failure.reason, object.etag);
      return { ref, etag: object.etag, input: r.ok, ...(fixed.fixup ? { fixup: fixed.fixup } : {}) };
    } catch (err) {
      if (err instanceof ObjectStoreError && err.kind === 'gone') return skip('vanished', 'the object was deleted after the scan');
      throw err;
    }
  }

  /** The input again with a freshly signed URL (its old one could not be downloaded). */
  async function resign(bucket: string, input: PlannedInput, byKey: ReadonlyMap<string, Prepared>): Promise<PlannedInput | undefined> {
    const p = byKey.get(input.source);
    const c = input.content;
    if (!p || typeof c === 'string' || (!c.video && !(c.image && !c.image.startsWith('data:')))) return undefined;
    const url = await deps.store.presign(bucket, p.ref.key, presignSeconds);
    return { ...input, content: c.video ? { ...c, video: url } : { ...c, image: url } };
  }

  /**
   * Once the new points are written: removes the chunks an object's old version had beyond
   * its new chunk count, and all points of an object that is now skipped (deleted, or no
   * longer indexable). Objects whose embedding failed keep their old points.
   */
  async function removeStale(collection: string, bucket: string, before: ReadonlyMap<string, number>, sent: readonly PlannedInput[], outcomes: ReadonlyMap<string, ItemOutcome>): Promise<void> {
    const nowCount = new Map(sent.map((i) => [i.source, i.chunkCount]));
    const stale: string[] = [];
    for (const [key, oldCount] of before) {
      const outcome = outcomes.get(key);
      if (outcome?.status === 'failed') continue;
      const keep = outcome?.status === 'skipped' ? 0 : (nowCount.get(key) ?? oldCount);
      stale.push(...chunkIds(bucket, key, oldCount, keep));
    }
    if (stale.length > 0) await deps.vectors.delete(collection, stale);
  }

  /** Writes points, retrying while Qdrant is unreachable: the vectors are paid for. */
  async function upsert(collection: string, records: PointRecord[]): Promise<void> {
    await pRetry(() => deps.vectors.upsert(collection, records), {
      retries: (deps.upsertAttempts ?? 8) - 1,
      minTimeout: 1000,
      maxTimeout: 30_000,
      randomize: true,
      shouldRetry: ({ error }) => (error as { retryable?: boolean }).retryable === true,
      onFailedAttempt: ({ error, retriesLeft }) => deps.log.warn({ collection, err: error.message, retriesLeft }, 'upsert failed'),
    });
  }

  return async function handleEmbedJob(job: EmbedJob): Promise<JobResult> {
    const { runId, bucket, settings } = job.data;
    const started = Date.now();
    const spec = resolveModel(settings.model, deps.modelOverrides);
    await deps.vectors.ensureCollection(settings.collection, settings.dimension);
    const refs = job.data.objects.map(fromTuple);
    // chunk counts of the versions already indexed, to remove chunks a new version no longer has
    const before = new Map(
      (await deps.vectors.retrieve(settings.collection, refs.map((r) => pointId(bucket, r.key, 0)))).map((p) => [p.payload.key as string, Number(p.payload.chunk_count ?? 1)]),
    );
    const prepared = await Promise.all(refs.map((ref) => limit(() => prepare(bucket, ref, spec, settings.imageMode, settings.maxBodyBytes))));

    const outcomes = new Map<string, ItemOutcome>();
    const byKey = new Map<string, Prepared>();
    for (const p of prepared) {
      byKey.set(p.ref.key, p);
      if (p.outcome) outcomes.set(p.ref.key, p.outcome);
    }
    const opts: PlanOptions = {
      model: spec,
      dimension: settings.dimension,
      maxBodyBytes: settings.maxBodyBytes,
      chunkOverlap: settings.chunkOverlap,
      ...(settings.chunkTokens !== undefined ? { chunkTokens: settings.chunkTokens } : {}),
      ...(settings.fps !== undefined ? { fps: settings.fps } : {}),
      ...(settings.instruct !== undefined ? { instruct: settings.instruct } : {}),
    };
    const plan = planRequests(prepared.flatMap((p) => (p.input ? [p.input] : [])), opts, deps.tokens);
    for (const r of plan.rejections) outcomes.set(r.source, { status: 'skipped', code: r.code, reason: r.reason });

    const caller = new ApiCaller(
      {
        embedder: deps.embedder,
        gate: deps.gate ?? OPEN_GATE,
        resign: (input) => resign(bucket, input, byKey),
        ...(deps.apiAttempts !== undefined ? { attempts: deps.apiAttempts } : {}),
        ...(deps.apiBackoffMs !== undefined ? { backoffMs: deps.apiBackoffMs } : {}),
        ...(deps.metrics ? { metrics: deps.metrics } : {}),
      },
      spec,
      opts,
    );
    const stats = caller.stats;
    const hash = paramsHash(settings);
    const indexedAt = now().toISOString();
    let points = 0;
    try {
      for (const request of plan.requests) {
        const { done, refused } = await caller.embed(request);
        for (const { input, error } of refused) {
          const ref = byKey.get(input.source)?.ref;
          outcomes.set(input.source, {
            status: 'failed',
            code: error.code,
            reason: `${input.chunkCount > 1 ? `chunk ${input.chunk}: ` : ''}${error.providerMessage}`,
            ...(ref ? { object: job.data.objects.find((o) => o[0] === ref.key) } : {}),
          });
        }
        const records: PointRecord[] = done
          .filter(({ input }) => outcomes.get(input.source)?.status !== 'failed')
          .map(({ input, vector }) => {
            const p = byKey.get(input.source)!;
            const payload: PointPayload = {
              bucket,
              key: p.ref.key,
              etag: p.etag,
              size: p.ref.size,
              last_modified: p.ref.lastModified,
              modality: input.kind,
              chunk: input.chunk,
              chunk_count: input.chunkCount,
              model: settings.model,
              dimension: settings.dimension,
              params_hash: hash,
              indexed_at: indexedAt,
              run_id: runId,
              ...(input.charStart !== undefined ? { char_start: input.charStart, char_end: input.charEnd } : {}),
              ...(p.fixup ? { fixup: p.fixup } : {}),
            };
            return { id: pointId(bucket, p.ref.key, input.chunk), vector, payload };
          });
        await upsert(settings.collection, records);
        points += records.length;
      }
    } finally {
      await deps.runs.addUsage(runId, { requests: stats.requests, inputs: stats.inputs, textTokens: stats.textTokens, imageTokens: stats.imageTokens, retries: stats.retries, throttled: stats.throttled });
    }

    await removeStale(settings.collection, bucket, before, plan.requests.flatMap((r) => r.inputs), outcomes);
    for (const p of prepared) {
      if (p.etag !== p.ref.etag && !outcomes.has(p.ref.key)) {
        outcomes.set(`${p.ref.key}`, { status: 'note', code: 'changed-since-scan', reason: `ETag ${p.ref.etag} at scan, ${p.etag} when fetched: the current version was indexed` });
      }
    }
    await deps.runs.recordItems(runId, outcomes);
    const counted = [...outcomes.values()];
    const skipped = counted.filter((o) => o.status === 'skipped').length;
    const failed = counted.filter((o) => o.status === 'failed').length;
    const result: JobResult = { status: 'done', objects: refs.length, indexed: refs.length - skipped - failed, skipped, failed, points };
    deps.log.info(
      { runId, jobId: job.id, requestIds: stats.requestIds, objects: refs.length, inputs: stats.inputs, requests: stats.requests, textTokens: stats.textTokens, imageTokens: stats.imageTokens, retries: stats.retries, throttled: stats.throttled, points, skipped, failed, ms: Date.now() - started },
      'embed job done',
    );
    return result;
  };
}
