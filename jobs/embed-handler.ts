/**
 * The embed job, step by step, each step in the module that owns its concept:
 *   fetch + prepare (fetch-objects.ts) -> assemble (src/assemble.ts) -> plan (src/planner.ts)
 *   -> skip what is paid for (src/incremental.ts) -> embed (api-call.ts)
 *   -> upsert (src/payloads.ts, src/vector-store.ts, src/parked.ts) -> remove stale chunks
 *   (src/incremental.ts) -> record every object's outcome (src/runs.ts).
 *
 * Built from its dependencies (`createEmbedHandler({ store, embedder, vectors, ... })`);
 * it constructs no client, so tests run it against fakes or real servers alike.
 * Transient failures are thrown (BullMQ retries the job); an input the API refuses is
 * isolated by splitting its request in halves, so the rest of the request is indexed.
 */
import pLimit from 'p-limit';
import { assemble } from '../src/assemble.js';
import type { ReadBounds } from '../src/bounds.js';
import { GROUP_PART_MAX } from '../src/compose.js';
import { fromTuple, paramsHash, resolveEmbedJob, unitParamsHash, unitsByObject } from '../src/embed-job.js';
import type { EmbedJobData } from '../src/embed-job.js';
import type { Embedder } from '../src/embedder.js';
import { pointId } from '../src/ids.js';
import { alreadyPaid, staleChunks } from '../src/incremental.js';
import type { PipelineMetrics } from '../src/metrics.js';
import { resolveModel } from '../src/models.js';
import type { ModelOverrides } from '../src/models.js';
import type { ObjectStore } from '../src/object-store.js';
import { writeOrPark } from '../src/parked.js';
import type { ParkedVectors } from '../src/parked.js';
import { pointRecord } from '../src/payloads.js';
import { textChunking } from '../src/plan-limits.js';
import type { PlanOptions } from '../src/plan-limits.js';
import { planRequests } from '../src/planner.js';
import { OPEN_GATE } from '../src/request-gate.js';
import type { RequestGate } from '../src/request-gate.js';
import type { ItemOutcome, JobResult, RunStore } from '../src/runs.js';
import type { TokenCounter } from '../src/tokens.js';
import { upsertRetrying } from '../src/vector-store.js';
import type { PointRecord, VectorStore } from '../src/vector-store.js';
import { ApiCaller, requestOf } from './api-call.js';
import { createFetcher } from './fetch-objects.js';

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** What the handler records in the run: usage, and every object's outcome. */
export type RunRecorder = Pick<RunStore, 'addUsage' | 'recordItems' | 'jobSettings'>;

export interface EmbedHandlerDeps {
  readonly store: ObjectStore;
  readonly embedder: Embedder;
  readonly vectors: VectorStore;
  readonly tokens: TokenCounter;
  readonly runs: RunRecorder;
  readonly log: Logger;
  /** The shared rate limiter. @defaultValue no limit */
  readonly gate?: RequestGate;
  /** Attempts of one API request for transient failures, and the first backoff. */
  readonly apiAttempts?: number;
  readonly apiBackoffMs?: number;
  /** 429s for this long without a break pause the run (the quota is gone). @defaultValue 30 minutes */
  readonly quotaPauseAfterMs?: number;
  /** Attempts of a Qdrant write before the job fails (vectors already paid for are worth waiting for). @defaultValue 8 */
  readonly upsertAttempts?: number;
  readonly metrics?: PipelineMetrics | undefined;
  /** Where vectors whose write was refused for good are kept. @defaultValue none (a retry buys them again) */
  readonly parked?: ParkedVectors;
  readonly modelOverrides?: ModelOverrides;
  /** Objects fetched at once within a job. @defaultValue 8 */
  readonly fetchConcurrency?: number;
  /** Lifetime of presigned URLs: long enough for the provider to download. @defaultValue 3600 */
  readonly presignSeconds?: number;
  /** Most of a text or image read (MAX_TEXT_BYTES, MAX_IMAGE_BYTES). @defaultValue DEFAULT_BOUNDS (bounds.ts) */
  readonly bounds?: ReadBounds;
  readonly now?: () => Date;
}

export interface EmbedJob {
  readonly id?: string | undefined;
  readonly data: EmbedJobData;
  /** Aborted when the worker gives up the job (drain timeout): no further API request is sent. */
  readonly signal?: AbortSignal;
}

export function createEmbedHandler(deps: EmbedHandlerDeps): (job: EmbedJob) => Promise<JobResult> {
  const limit = pLimit(deps.fetchConcurrency ?? 8);
  const now = deps.now ?? (() => new Date());
  // answers of the wrong shape this worker has seen: a repeat stops the run (api-call.ts)
  const badResponses = { count: 0 };

  const fetcher = createFetcher({
    store: deps.store,
    tokens: deps.tokens,
    bounds: deps.bounds,
    presignSeconds: deps.presignSeconds,
  });
  const log = deps.log;
  const write = (collection: string, records: PointRecord[]): Promise<void> =>
    upsertRetrying(deps.vectors, collection, records, { attempts: deps.upsertAttempts ?? 8, log });

  return async function handleEmbedJob(job: EmbedJob): Promise<JobResult> {
    // format 2 reads its run's bucket and settings from the run record; format 1 carries them
    const resolved = await resolveEmbedJob(job.data, (id) => deps.runs.jobSettings(id));
    const { runId, bucket, settings } = resolved;
    const started = Date.now();
    const spec = resolveModel(settings.model, deps.modelOverrides);
    await deps.vectors.ensureCollection(settings.collection, settings.dimension);
    const refs = resolved.objects.map(fromTuple);
    const units = resolved.units ?? [];
    // a group part's images share one request body, so each gets an eighth of it
    const inGroup = new Set(units.flatMap(([kind, , members]) => (kind === 'g' ? members : [])));
    const uriCap = (i: number): number =>
      Math.floor((settings.maxBodyBytes - 1024) / (inGroup.has(i) ? GROUP_PART_MAX : 1));
    // the plan takes the run's settings as they are, with the model's spec for its name
    const opts: PlanOptions = { ...settings, model: spec };
    // texts are chunked as they are prepared, for the plan's chunking (in slices: tokens.ts)
    const chunking = textChunking(opts);
    const prepareOpts = { spec, imageMode: settings.imageMode, chunking };
    const prepared = await Promise.all(
      refs.map((ref, i) => limit(() => fetcher.prepare(bucket, ref, prepareOpts, uriCap(i)))),
    );

    const outcomes = new Map<string, ItemOutcome>();
    for (const p of prepared) if (p.outcome) outcomes.set(p.ref.key, p.outcome);
    const assembled = assemble(prepared, units, outcomes);
    const unitOf = unitsByObject(resolved);
    // a failure carries the object as the job held it (and its unit), so retry-failed can queue it again
    refs.forEach((ref, i) => {
      const o = outcomes.get(ref.key);
      if (o?.status === 'failed' && !o.object)
        outcomes.set(ref.key, { ...o, object: resolved.objects[i], unit: unitOf.get(i) });
    });
    const { targets } = assembled;
    // the chunk (part) counts of the versions indexed now, read before anything is written
    const stored = new Map(
      (
        await deps.vectors.retrieve(
          settings.collection,
          assembled.slots.map((slot) => pointId(bucket, slot.pointKey, 0)),
        )
      ).map((p) => [p.id, p.payload]),
    );
    const before = new Map([...stored].map(([id, p]) => [id, Number(p.chunk_count ?? 1)]));
    const hashes = { object: paramsHash(settings), unit: unitParamsHash(settings) };
    const plan = planRequests(assembled.inputs, opts, deps.tokens);
    const planned = plan.requests.flatMap((r) => r.inputs);
    const indexedAt = now().toISOString();
    const pointCtx = { bucket, model: settings.model, dimension: settings.dimension, runId, indexedAt, hashes };
    // a job redone after a crash or a drain, or after a refused write: what is paid for is not bought again
    const paid = await alreadyPaid(
      { vectors: deps.vectors, parked: deps.parked, write, log },
      { collection: settings.collection, bucket, runId, inputs: planned, targets, hashes, indexedAt },
    );
    const requests = plan.requests
      .map((r) => requestOf(r.inputs.filter((i) => !paid.has(i))))
      .filter((r) => r.inputs.length > 0);
    for (const r of plan.rejections) {
      for (const m of targets.get(r.source)?.members ?? [])
        outcomes.set(m.ref.key, { status: 'skipped', code: r.code, reason: r.reason });
    }

    const caller = new ApiCaller(
      {
        embedder: deps.embedder,
        gate: deps.gate ?? OPEN_GATE,
        resign: (input) => fetcher.resign(bucket, input, targets),
        attempts: deps.apiAttempts,
        backoffMs: deps.apiBackoffMs,
        quotaPauseAfterMs: deps.quotaPauseAfterMs,
        badResponses,
        metrics: deps.metrics,
        signal: job.signal,
      },
      spec,
      opts,
    );
    const stats = caller.stats;
    const indexOf = new Map(refs.map((r, i) => [r, i]));
    // points an earlier attempt wrote count as this job's: the run counts each point once
    let points = paid.size;
    try {
      for (const request of requests) {
        const { done, refused } = await caller.embed(request);
        for (const { input, error } of refused) {
          // a refused part fails its whole group, so that retrying it redoes the group whole
          const t = targets.get(input.source);
          for (const m of t?.unitMembers ?? t?.members ?? []) {
            const index = indexOf.get(m.ref) ?? -1;
            outcomes.set(m.ref.key, {
              status: 'failed',
              code: error.code,
              reason: `${t?.part ? `part ${t.part.index + 1} of ${t.part.count}: ` : input.chunkCount > 1 ? `chunk ${input.chunk}: ` : ''}${error.providerMessage}`,
              object: resolved.objects[index],
              unit: unitOf.get(index),
            });
          }
        }
        const records: PointRecord[] = done
          .filter(
            ({ input }) =>
              !targets.get(input.source)?.members.some((m) => outcomes.get(m.ref.key)?.status === 'failed'),
          )
          .map(({ input, vector }) => pointRecord(pointCtx, input, vector, targets.get(input.source)!));
        await writeOrPark(write, deps.parked, log, settings.collection, records);
        points += records.length;
      }
    } finally {
      await deps.runs.addUsage(runId, {
        requests: stats.requests,
        inputs: stats.inputs,
        textTokens: stats.textTokens,
        imageTokens: stats.imageTokens,
        retries: stats.retries,
        throttled: stats.throttled,
      });
    }

    const stale = staleChunks(bucket, assembled.slots, before, planned, targets, outcomes);
    if (stale.length > 0) await deps.vectors.delete(settings.collection, stale);
    for (const p of prepared) {
      if (p.etag !== p.ref.etag && !outcomes.has(p.ref.key)) {
        outcomes.set(`${p.ref.key}`, {
          status: 'note',
          code: 'changed-since-scan',
          reason: `ETag ${p.ref.etag} at scan, ${p.etag} when fetched: the current version was indexed`,
        });
      }
    }
    await deps.runs.recordItems(runId, outcomes);
    const counted = [...outcomes.values()];
    const skipped = counted.filter((o) => o.status === 'skipped').length;
    const failed = counted.filter((o) => o.status === 'failed').length;
    const result: JobResult = {
      status: 'done',
      objects: refs.length,
      indexed: refs.length - skipped - failed,
      skipped,
      failed,
      points,
    };
    deps.log.info(
      {
        runId,
        jobId: job.id,
        requestIds: stats.requestIds,
        objects: refs.length,
        inputs: stats.inputs,
        requests: stats.requests,
        textTokens: stats.textTokens,
        imageTokens: stats.imageTokens,
        retries: stats.retries,
        throttled: stats.throttled,
        points,
        skipped,
        failed,
        ms: Date.now() - started,
      },
      'embed job done',
    );
    return result;
  };
}
