/**
 * A run's report: what it did, what it cost, what failed. Built from the run record and
 * its item outcomes; the cost uses the model's price table and the API's own usage.
 */
import { estimateCost, resolveModel } from './models.js';
import type { ModelOverrides } from './models.js';
import type { CodeCount, RunState } from './runs.js';
import { formatPacing } from './rate-limit-view.js';
import type { PacingView } from './rate-limit-view.js';

export interface RunReport {
  readonly id: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly collection: string;
  readonly model: string;
  readonly dimension: number;
  readonly mode: string;
  readonly status: 'scanning' | 'running' | 'finished' | 'scan failed';
  readonly startedAt: string;
  readonly finishedAt?: string;
  readonly durationSeconds: number;
  readonly scanned: number;
  readonly skippedByReason: Record<string, number>;
  readonly unchanged: number;
  readonly new: number;
  readonly changed: number;
  readonly deleted: number;
  readonly indexed: number;
  readonly failed: number;
  readonly failuresByCode: Record<string, number>;
  readonly points: number;
  readonly requests: number;
  readonly inputsPerRequest: number;
  readonly textTokens: number;
  readonly imageTokens: number;
  readonly retries: number;
  readonly throttled: number;
  readonly costUsd: number;
  readonly objectsPerSecond: number;
  readonly notes: Readonly<Record<string, string>>;
  /** The shared limiter's pacing of the run's model, when known (`runs show` adds it). */
  readonly rateLimit?: PacingView;
}

export function buildReport(
  run: RunState,
  /** How many items have each outcome (RunStore.codeCounts): the report walks no items. */
  codes: readonly CodeCount[],
  overrides: ModelOverrides = {},
  now = new Date(),
): RunReport {
  const c = run.counters;
  // counted in Maps: a code is the provider's or the store's word (`constructor` is a
  // property of every object, `__proto__` its prototype), then made own properties
  const skipped = new Map<string, number>();
  const failures = new Map<string, number>();
  for (const o of codes) {
    if (o.status === 'skipped') skipped.set(o.code, (skipped.get(o.code) ?? 0) + o.count);
    if (o.status === 'failed') failures.set(o.code, (failures.get(o.code) ?? 0) + o.count);
  }
  const skippedByReason: Record<string, number> = Object.fromEntries(skipped);
  const failuresByCode: Record<string, number> = Object.fromEntries(failures);
  const end = run.finishedAt ? Date.parse(run.finishedAt) : now.getTime();
  const durationSeconds = Math.max(0, (end - Date.parse(run.startedAt)) / 1000);
  let costUsd: number;
  try {
    costUsd = estimateCost(resolveModel(run.model, overrides), c.textTokens, c.imageTokens);
  } catch {
    costUsd = Number.NaN; // a model no longer in the catalog: no price
  }
  const done = c.objectsIndexed + c.objectsSkipped + c.objectsFailed;
  const status =
    run.scanStatus === 'failed'
      ? 'scan failed'
      : run.finishedAt
        ? 'finished'
        : run.scanStatus === 'scanning'
          ? 'scanning'
          : 'running';
  return {
    id: run.id,
    bucket: run.bucket,
    prefix: run.prefix,
    collection: run.collection,
    model: run.model,
    dimension: run.dimension,
    mode: run.mode ?? 'incremental',
    status,
    startedAt: run.startedAt,
    ...(run.finishedAt ? { finishedAt: run.finishedAt } : {}),
    durationSeconds,
    scanned: c.scanned,
    skippedByReason,
    unchanged: c.unchanged,
    new: c.new,
    changed: c.changed,
    deleted: c.deleted,
    indexed: c.objectsIndexed,
    failed: c.objectsFailed,
    failuresByCode,
    points: c.points,
    requests: c.requests,
    inputsPerRequest: c.requests ? c.inputs / c.requests : 0,
    textTokens: c.textTokens,
    imageTokens: c.imageTokens,
    retries: c.retries,
    throttled: c.throttled,
    costUsd,
    objectsPerSecond: durationSeconds > 0 ? done / durationSeconds : 0,
    notes: run.notes,
  };
}

const n = (x: number): string => x.toLocaleString('en-US');
const counts = (r: Record<string, number>): string =>
  Object.entries(r)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || 'none';

export function formatReport(r: RunReport): string {
  return [
    `run ${r.id} (${r.status}, ${r.mode})`,
    `  s3://${r.bucket}/${r.prefix} -> ${r.collection}, ${r.model} ${r.dimension}d`,
    `  started ${r.startedAt}${r.finishedAt ? `, finished ${r.finishedAt}` : ''}, ${r.durationSeconds.toFixed(0)} s, ${r.objectsPerSecond.toFixed(1)} objects/s`,
    `  scanned ${n(r.scanned)}: ${n(r.indexed)} indexed, ${n(r.unchanged)} unchanged, ${n(r.failed)} failed, ${n(r.deleted)} deleted (new ${n(r.new)}, changed ${n(r.changed)})`,
    `  skipped: ${counts(r.skippedByReason)}`,
    `  failed: ${counts(r.failuresByCode)}`,
    `  ${n(r.points)} points from ${n(r.requests)} requests (${r.inputsPerRequest.toFixed(2)} inputs a request), ${n(r.retries)} retries, ${n(r.throttled)} 429s`,
    `  tokens: ${n(r.textTokens)} text, ${n(r.imageTokens)} image; estimated cost $${Number.isNaN(r.costUsd) ? '?' : r.costUsd.toFixed(4)}`,
    ...(r.rateLimit ? [`  ${formatPacing(r.rateLimit)}`] : []),
    ...Object.entries(r.notes).map(([k, v]) => `  ${k}: ${v}`),
  ].join('\n');
}
