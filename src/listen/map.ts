/**
 * Which bucket's events go to which index: `bucket=collection:model` (or
 * `bucket=collection:model:dimension`, for a dimension other than the model's default), from `--map` (repeatable)
 * or a file of such lines (`--map-file`; blank lines and `#` comments are ignored). A bucket
 * may feed several collections (one line each).
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { resolveDimension, resolveModel } from '../models.js';
import type { ModelOverrides } from '../models.js';
import type { Target } from './state.js';

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** One `bucket=collection:model[:dimension]`; `where` names the flag or the file's line in an error. */
export function parseMapEntry(text: string, where: string, models: ModelOverrides = {}): Target {
  const entry = text.trim();
  const eq = entry.indexOf('=');
  const parts = eq > 0 ? entry.slice(eq + 1).split(':') : [];
  const dimensionText = parts.length >= 3 && /^\d+$/.test(parts[parts.length - 1] ?? '') ? parts.pop() : undefined;
  const model = parts.pop() ?? '';
  const collection = parts.join(':');
  if (eq <= 0 || !collection || !model) {
    throw new ConfigError(
      where,
      `"${entry}" is not bucket=collection:model or bucket=collection:model:dimension (e.g. photos=photos-index:qwen3-vl-embedding)`,
    );
  }
  const bucket = entry.slice(0, eq);
  if (!BUCKET.test(bucket))
    throw new ConfigError(
      where,
      `"${bucket}" is not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)`,
    );
  const dimension = dimensionText !== undefined ? Number(dimensionText) : undefined;
  try {
    resolveDimension(resolveModel(model, models), dimension);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(where, err.problem);
    throw err;
  }
  return { bucket, collection, model, ...(dimension !== undefined ? { dimension } : {}) };
}

export function readMapFile(path: string, models: ModelOverrides = {}): Target[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('--map-file', `cannot read ${path}: ${(err as Error).message}`);
  }
  const targets: Target[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const bare = line.replace(/#.*$/, '').trim();
    if (bare) targets.push(parseMapEntry(bare, `--map-file ${path}:${i + 1}`, models));
  });
  if (targets.length === 0)
    throw new ConfigError('--map-file', `${path} maps no bucket (lines of bucket=collection:model)`);
  return targets;
}

/** The targets of the flags and the file, each once. */
export function mapTargets(
  entries: readonly string[],
  file: string | undefined,
  models: ModelOverrides = {},
): Target[] {
  const all = [
    ...entries.map((e) => parseMapEntry(e, '--map', models)),
    ...(file !== undefined ? readMapFile(file, models) : []),
  ];
  if (all.length === 0)
    throw new ConfigError(
      '--map',
      'no bucket is mapped: give --map bucket=collection:model (repeatable) or --map-file',
    );
  const seen = new Map(all.map((t) => [`${t.bucket}\n${t.collection}\n${t.model}\n${t.dimension ?? ''}`, t]));
  const byCollection = new Map<string, Target>();
  for (const t of seen.values()) {
    const other = byCollection.get(`${t.bucket}\n${t.collection}`);
    if (other)
      throw new ConfigError(
        '--map',
        `${t.bucket} is mapped to ${t.collection} twice (${other.model}${other.dimension ? `:${other.dimension}` : ''} and ${t.model}${t.dimension ? `:${t.dimension}` : ''}): a collection holds one model's vectors of one dimension`,
      );
    byCollection.set(`${t.bucket}\n${t.collection}`, t);
  }
  return [...seen.values()];
}
