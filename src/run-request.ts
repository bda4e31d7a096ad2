/**
 * A run's request, as `mm-ingest index` flags and a reindex job's data give it: one schema,
 * checked once where the request comes in, so `startRun` (runner.ts) takes it as it is.
 * What needs the model (its dimensions, whether it composes, CHUNK_TOKENS) or the run's
 * record (a resumed run keeps what it started with) is checked by the runner.
 */
import { z } from 'zod';
import { parseGroupRule, parseSidecar } from './compose.js';
import { ConfigError } from './errors.js';
import type { IndexMode } from './producer.js';

const MODES = ['incremental', 'full', 'rebuild'] as const satisfies readonly IndexMode[];

/** The fields a reindex job may carry (the queue's contract, README "The reindex queue"). */
const jobFields = {
  bucket: z.string().min(3, 'a bucket name has at least 3 characters'),
  /** Only keys under this. @defaultValue '' (the whole bucket) */
  prefix: z.string().optional(),
  /** Index exactly these keys (deleted ones have their points removed) instead of a scan. */
  keys: z.array(z.string().min(1)).min(1).max(10_000).optional(),
  collection: z.string().min(1),
  model: z.string().min(1),
  dimension: z.number().int().positive().optional(),
  /** @defaultValue incremental */
  mode: z
    .enum(MODES, { error: (issue) => `must be incremental, full or rebuild, got ${JSON.stringify(issue.input)}` })
    .optional(),
  prune: z.boolean().optional(),
  /** Video frame sampling in [0, 1], passed to the API. */
  fps: z.number().min(0).max(1).optional(),
  /** A task description passed to the API; changing it re-embeds (it is in the params hash). */
  instruct: z.string().min(1).max(2000).optional(),
  /** Group the images of one item into multi_images vectors: `folder` or `pattern:<regex>` (compose.ts). */
  groupImages: z.string().min(1).optional(),
  /** Fuse each image or video with its sidecar text of these extensions (`.txt,.md`). */
  fuseSidecar: z.string().min(1).optional(),
  /** In a fused run, what objects without a partner become. @defaultValue skip */
  fuseUnpaired: z
    .enum(['skip', 'alone'], { error: (issue) => `must be skip or alone, got ${JSON.stringify(issue.input)}` })
    .optional(),
  /** Continue this run instead of starting one (a reindex job gets it once its run exists). */
  runId: z.string().min(1).optional(),
};

/** The scan's filters (scanner.ts ScanOptions), which only the CLI gives. */
const scanFields = {
  include: z.array(z.string()).optional(),
  exclude: z.array(z.string()).optional(),
  minSize: z.number().int().positive().optional(),
  maxSize: z.number().int().positive().optional(),
  pageSize: z.number().int().positive().optional(),
};

/** A reindex job's data: its own fields only, anything else refused by name. */
export const reindexJobSchema = z.object(jobFields).strict();
/** The whole request; other properties of the input (the CLI's other flags) are left out. */
const runRequestSchema = z.object({ ...jobFields, ...scanFields });

export type RunRequest = Readonly<z.output<typeof runRequestSchema>>;
export type ReindexJobData = z.input<typeof reindexJobSchema>;

/** How a bad field is named: as the CLI's flag (`--fuse-unpaired`) or as the job's field (`fuseUnpaired`). */
export type FieldNaming = 'flag' | 'field';

function nameOf(field: string, naming: FieldNaming): string {
  if (naming === 'field') return field;
  if (field === 'keys') return '--key';
  return `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** A request as a reindex job's data: the job's fields that are set (the CLI and schedules queue it). */
export function reindexJobData(request: RunRequest): ReindexJobData {
  return Object.fromEntries(
    Object.entries(request).filter(([field, value]) => Object.hasOwn(jobFields, field) && value !== undefined),
  ) as ReindexJobData;
}

/** `input` as a run request, or a ConfigError naming the first bad field. */
export function parseRunRequest(input: unknown, naming: FieldNaming): RunRequest {
  return checked(naming === 'field' ? reindexJobSchema : runRequestSchema, input, naming);
}

function checked(schema: typeof runRequestSchema | typeof reindexJobSchema, input: unknown, naming: FieldNaming) {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const [field, ...rest] = issue?.path.map(String) ?? [];
    const where = field === undefined ? '(data)' : [nameOf(field, naming), ...rest].join('.');
    throw new ConfigError(where, issue?.message ?? 'invalid');
  }
  const r: RunRequest = parsed.data;
  const name = (field: keyof RunRequest): string => nameOf(field, naming);
  // a pattern is refused here, by its field's name, before it is compiled for the scan
  if (r.groupImages !== undefined && r.fuseSidecar !== undefined) {
    throw new ConfigError(
      name('groupImages'),
      `cannot be combined with ${name('fuseSidecar')} (a vector is a multi_images group or a fused pair, not both)`,
    );
  }
  if (r.fuseUnpaired !== undefined && r.fuseSidecar === undefined)
    throw new ConfigError(name('fuseUnpaired'), `only applies with ${name('fuseSidecar')}`);
  if (r.groupImages !== undefined) parseGroupRule(r.groupImages, name('groupImages'));
  if (r.fuseSidecar !== undefined) parseSidecar(r.fuseSidecar, r.fuseUnpaired, name('fuseSidecar'));
  if (r.mode === 'rebuild' && r.keys)
    throw new ConfigError(name('mode'), 'a rebuild indexes a whole prefix, not a list of keys');
  return r;
}
