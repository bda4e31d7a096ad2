/**
 * A resumed run (`--run-id`, or a reindex job retried) scans, prunes and embeds as it started:
 * its request is rebuilt from the run's record, and a value asked for now that differs is
 * refused, naming the flag.
 */
import type { EmbedSettings } from './embed-job.js';
import { ConfigError } from './errors.js';
import type { IndexMode } from './producer.js';
import type { RunState } from './runs.js';
import type { RunRequest } from './run-request.js';

/** The scope and filters a run was started with; a differing value asked for now is an error naming it. */
const RECORDED = [
  'bucket',
  'collection',
  'model',
  'mode',
  'prune',
  'prefix',
  'include',
  'exclude',
  'minSize',
  'maxSize',
  'dimension',
  'fps',
  'instruct',
] as const;

export function withRecordedScope(run: RunState, req: RunRequest): { run: RunState; request: RunRequest } {
  const scope = JSON.parse(run.scope ?? '{}') as {
    prefix?: string;
    include?: string[];
    exclude?: string[];
    minSize?: number;
    maxSize?: number;
  };
  const settings = JSON.parse(run.settings ?? '{}') as Partial<EmbedSettings>;
  const recorded: RunRequest = {
    bucket: run.bucket,
    collection: run.collection,
    model: run.model,
    dimension: run.dimension,
    mode: (run.mode ?? 'incremental') as IndexMode,
    prune: run.prune === '1',
    prefix: scope.prefix ?? run.prefix,
    include: scope.include ?? [],
    exclude: scope.exclude ?? [],
    minSize: scope.minSize,
    maxSize: scope.maxSize,
    fps: settings.fps,
    instruct: settings.instruct,
    pageSize: req.pageSize,
    runId: run.id,
  };
  const empty = (v: unknown): boolean =>
    v === undefined || v === false || v === '' || (Array.isArray(v) && v.length === 0);
  for (const field of RECORDED) {
    const asked: unknown = req[field];
    const was: unknown = recorded[field];
    if (empty(asked) || JSON.stringify(asked) === JSON.stringify(was)) continue;
    if (field === 'mode' && asked === 'incremental' && was === undefined) continue;
    throw new ConfigError(
      `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
      `run ${run.id} was started with ${field} ${empty(was) ? '(not set)' : JSON.stringify(was)}, and a resumed run keeps what it started with (asked now: ${JSON.stringify(asked)}); leave it out, or start a new run`,
    );
  }
  const composedAs =
    settings.compose?.kind === 'fused' ? '--fuse-sidecar' : settings.compose ? '--group-images' : undefined;
  for (const flag of [
    req.groupImages !== undefined ? '--group-images' : undefined,
    req.fuseSidecar !== undefined ? '--fuse-sidecar' : undefined,
  ]) {
    if (flag !== undefined && flag !== composedAs)
      throw new ConfigError(
        flag,
        `run ${run.id} was started ${composedAs ? `with ${composedAs}` : 'without a composition'}, and a resumed run keeps its settings; leave it out, or start a new run`,
      );
  }
  if (req.keys) throw new ConfigError('--key', `run ${run.id} is resumed as it started; a list of keys is a new run`);
  return { run, request: recorded };
}
