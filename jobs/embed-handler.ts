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
import { DEFAULT_BOUNDS, grewPastBound } from '../src/bounds.js';
import type { ReadBounds } from '../src/bounds.js';
import { GROUP_PART_MAX, groupParts, groupPointKey, unitEtag } from '../src/compose.js';
import type { Embedder } from '../src/embedder.js';
import { pointId } from '../src/ids.js';
import { chunkIds } from '../src/incremental.js';
import { classifyKey } from '../src/media.js';
import { resolveModel } from '../src/models.js';
import type { ModelOverrides, ModelSpec } from '../src/models.js';
import { fixImage } from '../src/fixup.js';
import type { FixupRecord } from '../src/fixup.js';
import { ServiceError } from '../src/errors.js';
import { ObjectStoreError } from '../src/object-store.js';
import type { ObjectStore } from '../src/object-store.js';
import { planRequests, textChunking } from '../src/planner.js';
import type { PipelineMetrics } from '../src/metrics.js';
import type { ParkedVectors } from '../src/parked.js';
import { OPEN_GATE } from '../src/rate-limit.js';
import type { RequestGate } from '../src/rate-limit.js';
import type { PlannedInput, PlanOptions, PreparedInput, TextChunking } from '../src/planner.js';
import { prepareImage, prepareTextInSlices, prepareVideo } from '../src/prepare.js';
import type { ItemOutcome, JobResult, RunStore } from '../src/runs.js';
import type { TokenCounter } from '../src/tokens.js';
import type { PointPayload, PointRecord, VectorStore } from '../src/vector-store.js';
import { ApiCaller, requestOf } from './api-call.js';
import { fromTuple, paramsHash, resolveEmbedJob, unitParamsHash, unitsByObject } from '../src/embed-job.js';
import type { EmbedJobData, ObjectRef, UnitTuple } from '../src/embed-job.js';

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
  /** 429s for this long without a break pause the run (the quota is gone). @defaultValue 30 minutes */
  readonly quotaPauseAfterMs?: number;
  /** Attempts of a Qdrant write before the job fails (vectors already paid for are worth waiting for). @defaultValue 8 */
  readonly upsertAttempts?: number;
  readonly metrics?: PipelineMetrics;
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
  const bounds = deps.bounds ?? DEFAULT_BOUNDS;
  const now = deps.now ?? (() => new Date());
  // answers of the wrong shape this worker has seen: a repeat stops the run (api-call.ts)
  const badResponses = { count: 0 };

  /**
   * An object's bytes, never more than its bound plus one (an object that grew past it
   * after the scan is not read whole); `over` when it is over the bound. An object that
   * became empty answers a range with InvalidRange: it is read as zero bytes.
   */
  async function fetchBounded(bucket: string, ref: ObjectRef, maxBytes: number): Promise<{ bytes: Uint8Array; etag: string; over: boolean }> {
    try {
      const object = await deps.store.get(bucket, ref.key, [0, maxBytes]);
      return { bytes: object.bytes, etag: object.etag, over: object.bytes.length > maxBytes };
    } catch (err) {
      if (err instanceof ObjectStoreError && err.code === 'InvalidRange') return { bytes: new Uint8Array(0), etag: ref.etag, over: false };
      throw err;
    }
  }

  async function prepare(bucket: string, ref: ObjectRef, spec: ModelSpec, imageMode: 'inline' | 'url', maxDataUriBytes: number, chunking: TextChunking): Promise<Prepared> {
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
      const modality = ref.modality === 'text' ? 'text' : 'image';
      const object = await fetchBounded(bucket, ref, modality === 'text' ? bounds.maxTextBytes : bounds.maxImageBytes);
      if (object.over) return skip('too-large', grewPastBound(modality, bounds), object.etag);
      if (ref.modality === 'text') {
        const r = await prepareTextInSlices(ref.key, object.bytes, deps.tokens, chunking);
        return 'failure' in r ? skip(r.failure.code, r.failure.reason, object.etag) : { ref, etag: object.etag, input: r.ok };
      }
      // an image the model cannot take as it is is converted or downscaled (a copy: the
      // object itself is never changed); URL mode can only send the object as it is
      const fixed = await fixImage(object.bytes, spec, imageMode === 'inline' ? { maxDataUriBytes } : {});
      if ('skip' in fixed) return skip(fixed.skip.code, fixed.skip.reason, object.etag);
      if (fixed.fixup && imageMode === 'url') {
        return skip('needs-fixup', `${fixed.fixup.actions.join(', ')} would be needed, which URL mode cannot send (use IMAGE_MODE=inline)`, object.etag);
      }
      const payload = imageMode === 'url' ? { kind: 'url' as const, url: await deps.store.presign(bucket, ref.key, presignSeconds) } : { kind: 'inline' as const, data: fixed.bytes };
      const r = prepareImage(ref.key, fixed.bytes, payload);
      if ('failure' in r) return skip(r.failure.code, r.failure.reason, object.etag);
      return { ref, etag: object.etag, input: r.ok, ...(fixed.fixup ? { fixup: fixed.fixup } : {}) };
    } catch (err) {
      if (err instanceof ObjectStoreError && err.decision === 'gone') return skip('vanished', 'the object was deleted after the scan');
      throw err;
    }
  }

  /** The input again with freshly signed URLs (its old ones could not be downloaded). */
  async function resign(bucket: string, input: PlannedInput, targets: ReadonlyMap<string, Target>): Promise<PlannedInput | undefined> {
    const t = targets.get(input.source);
    const c = input.content;
    if (!t || typeof c === 'string') return undefined;
    const fresh = (m: Prepared | undefined): Promise<string> | undefined => (m ? deps.store.presign(bucket, m.ref.key, presignSeconds) : undefined);
    const isUrl = (u: string | undefined): u is string => u !== undefined && !u.startsWith('data:');
    const media = t.members.filter((m) => m.ref.modality !== 'text');
    const next = { ...c };
    if (c.video) next.video = (await fresh(media.find((m) => m.ref.modality === 'video'))) ?? c.video;
    if (isUrl(c.image)) next.image = (await fresh(media.find((m) => m.ref.modality === 'image'))) ?? c.image;
    if (c.multi_images?.some(isUrl)) next.multi_images = await Promise.all(c.multi_images.map(async (u, j) => (isUrl(u) ? ((await fresh(media[j])) ?? u) : u)));
    return JSON.stringify(next) === JSON.stringify(c) ? undefined : { ...input, content: next };
  }

  /** The point an input's vector becomes, and the ETag and params hash that point carries. */
  function pointOf(bucket: string, input: PlannedInput, t: Target, hashes: { object: string; unit: string }): { id: string; etag: string; paramsHash: string; chunkCount: number } {
    return {
      id: pointId(bucket, t.pointKey, t.part?.index ?? input.chunk),
      etag: t.unit ? String(t.unit.etag) : t.members[0]!.etag,
      paramsHash: t.unit ? hashes.unit : hashes.object,
      chunkCount: t.part?.count ?? input.chunkCount,
    };
  }

  /**
   * The planned inputs whose points are already there for the content at hand (same ETag,
   * params hash and chunk count), chunk by chunk, so nothing is bought twice:
   * - written by this run: an earlier attempt of this job got that far before its worker
   *   died or gave it back (a text cut between two requests redoes only the chunks not
   *   written). Only this run's points count, so a `full` run still re-embeds;
   * - kept after Qdrant refused their write (parked.ts): written now, from the kept vector.
   */
  async function alreadyPaid(collection: string, bucket: string, runId: string, inputs: readonly PlannedInput[], targets: ReadonlyMap<string, Target>, hashes: { object: string; unit: string }, indexedAt: string): Promise<Set<PlannedInput>> {
    const planned = inputs.flatMap((input) => {
      const t = targets.get(input.source);
      return t ? [{ input, point: pointOf(bucket, input, t, hashes) }] : [];
    });
    const fits = (payload: Record<string, unknown>, point: ReturnType<typeof pointOf>): boolean =>
      payload.etag === point.etag && payload.params_hash === point.paramsHash && payload.chunk_count === point.chunkCount;
    const found = new Map((await deps.vectors.retrieve(collection, planned.map((p) => p.point.id))).map((p) => [p.id, p.payload]));
    const paid = new Set(planned.filter(({ point }) => found.get(point.id)?.run_id === runId && fits(found.get(point.id)!, point)).map((p) => p.input));
    if (deps.parked) {
      const open = planned.filter((p) => !paid.has(p.input));
      const kept = new Map((await deps.parked.find(collection, open.map((p) => p.point.id))).map((r) => [r.id, r]));
      const usable = open.filter(({ point }) => kept.has(point.id) && fits(kept.get(point.id)!.payload, point));
      const records = usable.map(({ point }) => {
        const r = kept.get(point.id)!;
        return { ...r, payload: { ...r.payload, run_id: runId, indexed_at: indexedAt } };
      });
      if (records.length > 0) {
        await upsert(collection, records);
        await deps.parked.drop(collection, records.map((r) => r.id));
        deps.log.info({ collection, points: records.length }, 'kept vectors written: not bought again');
        for (const p of usable) paid.add(p.input);
      }
    }
    return paid;
  }

  /**
   * Once the new points are written: removes the chunks (parts) a slot's old version had
   * beyond its new count, and all points of a slot now skipped (deleted, no longer
   * indexable, or a unit left with nothing to embed). A slot with a failed member keeps
   * its old points.
   */
  async function removeStale(collection: string, bucket: string, slots: readonly Slot[], before: ReadonlyMap<string, number>, sent: readonly PlannedInput[], targets: ReadonlyMap<string, Target>, outcomes: ReadonlyMap<string, ItemOutcome>): Promise<void> {
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
    if (stale.length > 0) await deps.vectors.delete(collection, stale);
  }

  /**
   * Writes points, retrying while Qdrant is unreachable: the vectors are paid for. When it
   * refuses for good, they are kept (parked.ts) for the job's retry, and the error thrown.
   */
  async function upsertOrPark(collection: string, records: PointRecord[]): Promise<void> {
    try {
      await upsert(collection, records);
    } catch (err) {
      const kept = (await deps.parked?.park(collection, records).catch(() => 0)) ?? 0;
      deps.log.warn({ collection, points: records.length, kept, err: (err as Error).message }, 'write refused: vectors kept for the retry');
      throw err;
    }
  }

  async function upsert(collection: string, records: PointRecord[]): Promise<void> {
    await pRetry(() => deps.vectors.upsert(collection, records), {
      retries: (deps.upsertAttempts ?? 8) - 1,
      minTimeout: 1000,
      maxTimeout: 30_000,
      randomize: true,
      shouldRetry: ({ error }) => error instanceof ServiceError && error.retryable,
      onFailedAttempt: ({ error, retriesLeft }) => deps.log.warn({ collection, err: error.message, retriesLeft }, 'upsert failed'),
    });
  }

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
    const uriCap = (i: number): number => Math.floor((settings.maxBodyBytes - 1024) / (inGroup.has(i) ? GROUP_PART_MAX : 1));
    const opts: PlanOptions = {
      model: spec,
      dimension: settings.dimension,
      maxBodyBytes: settings.maxBodyBytes,
      chunkOverlap: settings.chunkOverlap,
      ...(settings.chunkTokens !== undefined ? { chunkTokens: settings.chunkTokens } : {}),
      ...(settings.fps !== undefined ? { fps: settings.fps } : {}),
      ...(settings.instruct !== undefined ? { instruct: settings.instruct } : {}),
    };
    // texts are chunked as they are prepared, for the plan's chunking (in slices: tokens.ts)
    const chunking = textChunking(opts);
    const prepared = await Promise.all(refs.map((ref, i) => limit(() => prepare(bucket, ref, spec, settings.imageMode, uriCap(i), chunking))));

    const outcomes = new Map<string, ItemOutcome>();
    for (const p of prepared) if (p.outcome) outcomes.set(p.ref.key, p.outcome);
    const assembled = assemble(prepared, units, outcomes);
    const { targets } = assembled;
    // the chunk (part) counts of the versions indexed now, read before anything is written
    const stored = new Map((await deps.vectors.retrieve(settings.collection, assembled.slots.map((slot) => pointId(bucket, slot.pointKey, 0)))).map((p) => [p.id, p.payload]));
    const before = new Map([...stored].map(([id, p]) => [id, Number(p.chunk_count ?? 1)]));
    const hashes = { object: paramsHash(settings), unit: unitParamsHash(settings) };
    const plan = planRequests(assembled.inputs, opts, deps.tokens);
    const planned = plan.requests.flatMap((r) => r.inputs);
    const indexedAt = now().toISOString();
    // a job redone after a crash or a drain, or after a refused write: what is paid for is not bought again
    const paid = await alreadyPaid(settings.collection, bucket, runId, planned, targets, hashes, indexedAt);
    const requests = plan.requests.map((r) => requestOf(r.inputs.filter((i) => !paid.has(i)))).filter((r) => r.inputs.length > 0);
    for (const r of plan.rejections) {
      for (const m of targets.get(r.source)?.members ?? []) outcomes.set(m.ref.key, { status: 'skipped', code: r.code, reason: r.reason });
    }

    const caller = new ApiCaller(
      {
        embedder: deps.embedder,
        gate: deps.gate ?? OPEN_GATE,
        resign: (input) => resign(bucket, input, targets),
        ...(deps.apiAttempts !== undefined ? { attempts: deps.apiAttempts } : {}),
        ...(deps.apiBackoffMs !== undefined ? { backoffMs: deps.apiBackoffMs } : {}),
        ...(deps.quotaPauseAfterMs !== undefined ? { quotaPauseAfterMs: deps.quotaPauseAfterMs } : {}),
        badResponses,
        ...(deps.metrics ? { metrics: deps.metrics } : {}),
        ...(job.signal ? { signal: job.signal } : {}),
      },
      spec,
      opts,
    );
    const stats = caller.stats;
    const unitOf = unitsByObject(resolved);
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
            const unit = unitOf.get(index);
            outcomes.set(m.ref.key, {
              status: 'failed',
              code: error.code,
              reason: `${t?.part ? `part ${t.part.index + 1} of ${t.part.count}: ` : input.chunkCount > 1 ? `chunk ${input.chunk}: ` : ''}${error.providerMessage}`,
              object: resolved.objects[index],
              ...(unit ? { unit } : {}),
            });
          }
        }
        const records: PointRecord[] = done
          .filter(({ input }) => !targets.get(input.source)?.members.some((m) => outcomes.get(m.ref.key)?.status === 'failed'))
          .map(({ input, vector }) => {
            const t = targets.get(input.source)!;
            const chunk = t.part?.index ?? input.chunk;
            const common = {
              bucket,
              chunk,
              chunk_count: t.part?.count ?? input.chunkCount,
              model: settings.model,
              dimension: settings.dimension,
              indexed_at: indexedAt,
              run_id: runId,
            };
            const payload: PointPayload = t.unit
              ? { ...common, ...t.unit, params_hash: hashes.unit }
              : {
                  ...common,
                  key: t.members[0]!.ref.key,
                  etag: t.members[0]!.etag,
                  size: t.members[0]!.ref.size,
                  last_modified: t.members[0]!.ref.lastModified,
                  modality: input.kind,
                  params_hash: hashes.object,
                  ...(input.charStart !== undefined ? { char_start: input.charStart, char_end: input.charEnd } : {}),
                  ...(t.members[0]!.fixup ? { fixup: t.members[0]!.fixup } : {}),
                };
            return { id: pointId(bucket, t.pointKey, chunk), vector, payload };
          });
        await upsertOrPark(settings.collection, records);
        points += records.length;
      }
    } finally {
      await deps.runs.addUsage(runId, { requests: stats.requests, inputs: stats.inputs, textTokens: stats.textTokens, imageTokens: stats.imageTokens, retries: stats.retries, throttled: stats.throttled });
    }

    await removeStale(settings.collection, bucket, assembled.slots, before, planned, targets, outcomes);
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

/** Where a planned input's vector goes: its point key, the objects it stands for, and a unit's payload. */
interface Target {
  readonly pointKey: string;
  readonly members: readonly Prepared[];
  /** A group part: its number and the group's part count (the point's chunk and chunk_count). */
  readonly part?: { readonly index: number; readonly count: number };
  /** Every member of the unit the input belongs to (a group's other parts too). */
  readonly unitMembers?: readonly Prepared[];
  /** A unit's own payload fields (key, etag, size, modality and what names its members). */
  readonly unit?: Pick<PointPayload, 'key' | 'etag' | 'size' | 'last_modified' | 'modality'> & Readonly<Record<string, unknown>>;
}

/** A point key of the job (an object's, or a unit's) and the objects behind it, for stale-point removal. */
interface Slot {
  readonly pointKey: string;
  readonly members: readonly Prepared[];
  /** The ETag its points carry once indexed (an object's, or its unit's hash). */
  readonly etag: string;
  readonly unit: boolean;
}

/** Sources of unit inputs start with NUL: they can never equal an object key. */
const unitSource = (unit: number, part: number): string => `\u0000u${unit}.${part}`;

/**
 * Turns the job's prepared objects into planner inputs: an object alone as it is, a
 * group's usable images as `multi_images` parts of 8, a pair as one fused input. A member
 * that could not be prepared is recorded (outcomes) and leaves the group without it; a
 * pair missing either member is skipped whole, with the reason naming the member.
 */
function assemble(prepared: readonly Prepared[], units: readonly UnitTuple[], outcomes: Map<string, ItemOutcome>): { inputs: PreparedInput[]; targets: Map<string, Target>; slots: Slot[] } {
  const inputs: PreparedInput[] = [];
  const targets = new Map<string, Target>();
  const slots: Slot[] = [];
  const inUnit = new Set(units.flatMap(([, , members]) => members));
  prepared.forEach((p, i) => {
    if (inUnit.has(i)) return;
    slots.push({ pointKey: p.ref.key, members: [p], etag: p.etag, unit: false });
    if (!p.input) return;
    inputs.push(p.input);
    targets.set(p.input.source, { pointKey: p.ref.key, members: [p] });
  });
  const size = (ms: readonly Prepared[]): number => ms.reduce((n, m) => n + m.ref.size, 0);
  const latest = (ms: readonly Prepared[]): string => ms.map((m) => m.ref.lastModified).sort().at(-1) ?? '';
  const fixups = (ms: readonly Prepared[]): object => {
    const done = ms.filter((m) => m.fixup);
    return done.length > 0 ? { fixups: Object.fromEntries(done.map((m) => [m.ref.key, m.fixup])) } : {};
  };
  units.forEach(([kind, id, indexes], u) => {
    const members = indexes.map((i) => prepared[i]!);
    const etag = unitEtag(members.map((m) => ({ key: m.ref.key, etag: m.etag })));
    if (kind === 'g') {
      const pointKey = groupPointKey(id);
      slots.push({ pointKey, members, etag, unit: true });
      const usable = members.filter((m) => m.input?.kind === 'image').sort((a, b) => (a.ref.key < b.ref.key ? -1 : 1));
      const parts = groupParts(usable);
      parts.forEach((part, index) => {
        const source = unitSource(u, index);
        inputs.push({ kind: 'multi_images', source, images: part.map((m) => (m.input as Extract<PreparedInput, { kind: 'image' }>).image) });
        targets.set(source, {
          pointKey,
          members: part,
          unitMembers: members,
          part: { index, count: parts.length },
          unit: { key: id, group: id, members: part.map((m) => m.ref.key), group_members: usable.length, etag, size: size(part), last_modified: latest(part), modality: 'multi_images', ...fixups(part) },
        });
      });
      return;
    }
    const media = members.find((m) => m.ref.modality !== 'text');
    const caption = members.find((m) => m.ref.modality === 'text');
    if (!media || !caption) return;
    slots.push({ pointKey: media.ref.key, members, etag, unit: true });
    const mediaInput = media.input;
    const textInput = caption.input;
    if (!mediaInput || textInput?.kind !== 'text') {
      const [bad, other] = !mediaInput ? [media, caption] : [caption, media];
      if (!outcomes.has(other.ref.key)) {
        outcomes.set(other.ref.key, { status: 'skipped', code: 'partner-skipped', reason: `its fused partner ${bad.ref.key} was skipped: ${outcomes.get(bad.ref.key)?.reason ?? 'not usable'}` });
      }
      return;
    }
    const source = unitSource(u, 0);
    const text = { text: textInput.text, tokens: textInput.tokens };
    inputs.push(
      mediaInput.kind === 'video'
        ? { kind: 'fused', source, text, video: mediaInput.video }
        : { kind: 'fused', source, text, image: (mediaInput as Extract<PreparedInput, { kind: 'image' }>).image },
    );
    targets.set(source, {
      pointKey: media.ref.key,
      members,
      unitMembers: members,
      unit: {
        key: media.ref.key,
        sidecar: caption.ref.key,
        members: [media.ref.key, caption.ref.key],
        member_etags: [media.etag, caption.etag],
        etag,
        size: size(members),
        last_modified: latest(members),
        modality: 'fused',
        media: media.ref.modality,
        ...(media.fixup ? { fixup: media.fixup } : {}),
      },
    });
  });
  return { inputs, targets, slots };
}
