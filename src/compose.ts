/**
 * Composition: when several objects make one vector.
 * - `multi_images` (tongyi models): the images of one item are one `multi_images` input.
 *   The item is the image's folder (an image at the top of the bucket is embedded alone),
 *   or the first capture group of a key pattern (an image it does not match: alone). An item
 *   of more than 8 images is split, in key order, into parts of 8 (the last part smaller):
 *   part p is chunk p of the group's points.
 * - `fused` (qwen3-vl-embedding): an image or video and its sidecar text (the same key with
 *   a text extension: `photo.jpg` + `photo.txt`) are one fused input. A media object with
 *   no sidecar, and a text that is nobody's sidecar, is "unpaired": skipped with its reason
 *   (the default: fused and plain vectors do not share a space), or embedded alone.
 *
 * A unit's ETag is a hash of its members' keys and ETags, so it changes when any member
 * changes, is added or is removed: incremental runs redo exactly the units that changed.
 * Pure functions; the producer stages candidates in Redis (runs.ts) so that units whose
 * members are listed far apart still come together.
 */
import { RE2JS } from 're2js';
import { ConfigError } from './errors.js';
import { extensionOf } from './media.js';
import type { ModelSpec } from './models.js';
import { shortHash } from './ids.js';
import type { ScannedObject, SkippedObject } from './scanner.js';

export type Composition =
  | { readonly kind: 'multi_images'; readonly rule: 'folder' }
  | { readonly kind: 'multi_images'; readonly rule: 'pattern'; readonly pattern: string }
  | { readonly kind: 'fused'; readonly sidecar: readonly string[]; readonly unpaired: 'skip' | 'alone' };

/** A group or a pair: one point (a group of more than 8 images: one point a part). */
export interface Unit {
  readonly kind: 'group' | 'pair';
  /** A group's item name (its folder with a trailing `/`, or the pattern's capture); a pair's media key. */
  readonly id: string;
  /** Hash of the members' keys and ETags. */
  readonly etag: string;
  /** Sorted by key; a pair's media first, then its sidecar. */
  readonly members: readonly ScannedObject[];
}

/** Images a `multi_images` input holds at most (the contract's limit). */
export const GROUP_PART_MAX = 8;

/** Images a group may hold (a job holds a unit whole: a folder of 100,000 would be one job of
 * 12,500 points); a larger group is skipped, each of its images `group-too-large`. */
export const GROUP_MAX_IMAGES = 200;

/** A job entry: one object alone, or a unit. */
export type Entry = { readonly object: ScannedObject } | { readonly unit: Unit };

export const entryObjects = (e: Entry): readonly ScannedObject[] => ('unit' in e ? e.unit.members : [e.object]);

/** Longest key pattern taken: patterns come from anyone who can run the CLI or write a reindex job. */
export const PATTERN_MAX_LENGTH = 1000;
/**
 * Largest compiled pattern, in RE2's measure of its cost (instructions): matching a key
 * takes time proportional to it times the key's length. 200 is about 1 ms on a 1 KiB key
 * here, at worst; the README's example has 21.
 */
export const PATTERN_MAX_PROGRAM = 200;

/**
 * A key pattern compiled for RE2 (re2js, pure JavaScript): it matches in time linear in the
 * key, so no pattern can backtrack catastrophically (`^(a+)+$` takes 2^n steps on
 * JavaScript's engine for n a's and a mismatch, and would freeze a producer or a worker).
 * RE2 has no backreferences or lookarounds: such patterns are refused with its reason.
 */
function compilePattern(pattern: string, source: string): RE2JS {
  if (pattern.length > PATTERN_MAX_LENGTH) {
    throw new ConfigError(
      source,
      `the pattern has ${pattern.length.toLocaleString('en-US')} characters: at most ${PATTERN_MAX_LENGTH.toLocaleString('en-US')}`,
    );
  }
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern);
  } catch (err) {
    throw new ConfigError(
      source,
      `invalid regular expression: ${(err as Error).message} (patterns run on RE2, in linear time: no backreferences or lookarounds)`,
    );
  }
  const size = re.programSize();
  if (size > PATTERN_MAX_PROGRAM)
    throw new ConfigError(
      source,
      `the pattern is too costly to run on every key (program size ${size}, at most ${PATTERN_MAX_PROGRAM}): use fewer or smaller repetitions`,
    );
  return re;
}

/**
 * Parses `--group-images` (or a reindex job's `groupImages`, named by `source`): `folder`,
 * or `pattern:<regex>` whose first capture group (or the group named `item`) names the item.
 */
export function parseGroupRule(value: string, source = '--group-images'): Composition {
  if (value === 'folder') return { kind: 'multi_images', rule: 'folder' };
  if (!value.startsWith('pattern:'))
    throw new ConfigError(
      source,
      `must be "folder" or "pattern:<regex with a capture group>", got "${value.length > 100 ? `${value.slice(0, 100)}...` : value}"`,
    );
  const pattern = value.slice('pattern:'.length);
  if (compilePattern(pattern, source).groupCount() < 1)
    throw new ConfigError(source, `the pattern "${pattern}" has no capture group to name the item`);
  return { kind: 'multi_images', rule: 'pattern', pattern };
}

/** Parses `--fuse-sidecar`: a comma-separated list of text extensions (`.txt,.md`). */
export function parseSidecar(
  value: string,
  unpaired: 'skip' | 'alone' = 'skip',
  source = '--fuse-sidecar',
): Composition {
  const exts = value
    .split(',')
    .map((s) => s.trim().replace(/^\./, '').toLowerCase())
    .filter((s) => s !== '');
  if (exts.length === 0) throw new ConfigError(source, `must list text extensions such as ".txt", got "${value}"`);
  for (const e of exts) if (!/^[a-z0-9]+$/.test(e)) throw new ConfigError(source, `"${e}" is not a file extension`);
  return { kind: 'fused', sidecar: exts, unpaired };
}

/** Refuses a composition the model cannot embed, naming the option. */
export function checkComposition(c: Composition, model: ModelSpec): void {
  if (c.kind === 'multi_images' && model.multiImagesMax === 0) {
    throw new ConfigError(
      '--group-images',
      `${model.name} has no multi_images input (tongyi-embedding-vision-plus and -flash have)`,
    );
  }
  if (c.kind === 'fused' && !model.fused) {
    throw new ConfigError('--fuse-sidecar', `${model.name} has no fused embeddings (qwen3-vl-embedding has)`);
  }
}

function stem(key: string): string {
  const ext = extensionOf(key);
  return ext === '' ? key : key.slice(0, key.length - ext.length - 1);
}

/** Compiled patterns, by their text; a run's recorded pattern comes from Redis, so it is bounded here too. */
const patterns = new Map<string, { readonly re: RE2JS; readonly named: boolean }>();
function compiled(pattern: string): { readonly re: RE2JS; readonly named: boolean } {
  let c = patterns.get(pattern);
  if (!c) {
    const re = compilePattern(pattern, 'groupImages');
    patterns.set(pattern, (c = { re, named: Object.hasOwn(re.namedGroups(), 'item') }));
  }
  return c;
}

/**
 * The stage a scanned object waits in until its unit is complete, or undefined when it is
 * embedded on its own (a text or video under `multi_images`, an image no pattern matches,
 * a text with another extension than the sidecars').
 */
export function stageOf(o: ScannedObject, c: Composition): string | undefined {
  if (c.kind === 'multi_images') {
    if (o.modality !== 'image') return undefined;
    // an image at the top of the bucket has no folder: it is an item of its own
    if (c.rule === 'folder') return o.key.includes('/') ? o.key.slice(0, o.key.lastIndexOf('/') + 1) : undefined;
    const { re, named } = compiled(c.pattern);
    const m = re.matcher(o.key);
    if (!m.find()) return undefined;
    const item = (named ? m.group('item') : null) ?? m.group(1);
    return item === null || item === '' ? undefined : item;
  }
  if (o.modality === 'text' && !c.sidecar.includes(extensionOf(o.key))) return undefined;
  return stem(o.key);
}

export function unitEtag(members: readonly { key: string; etag: string }[]): string {
  return shortHash(
    [...members].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((m) => [m.key, m.etag]),
    24,
  );
}

const byKey = (a: ScannedObject, b: ScannedObject): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

export interface Formed {
  readonly entries: Entry[];
  readonly skipped: SkippedObject[];
}

/** What an object no unit takes becomes: an entry of its own, or a skip. */
export function unpaired(o: ScannedObject, c: Composition, why: string): Formed {
  if (c.kind === 'fused' && c.unpaired === 'skip')
    return {
      entries: [],
      skipped: [
        {
          object: o,
          code: 'unpaired',
          reason: `${why}; fused runs skip unpaired objects (--fuse-unpaired alone embeds them alone)`,
        },
      ],
    };
  return { entries: [{ object: o }], skipped: [] };
}

/** What an object that waits for no unit becomes (see `stageOf`). */
export function alone(o: ScannedObject, c: Composition): Formed {
  return c.kind === 'fused'
    ? unpaired(
        o,
        c,
        `a text whose extension is not one of --fuse-sidecar's (${c.sidecar.map((e) => `.${e}`).join(', ')})`,
      )
    : { entries: [{ object: o }], skipped: [] };
}

/** Forms the units of one stage from all its members. */
export function formUnits(stage: string, members: readonly ScannedObject[], c: Composition): Formed {
  const sorted = [...members].sort(byKey);
  if (c.kind === 'multi_images') {
    if (sorted.length > GROUP_MAX_IMAGES) {
      const reason = `its group "${stage}" has ${sorted.length} images, over the ${GROUP_MAX_IMAGES} one group (one job) may hold: split the folder, or use a --group-images pattern that names smaller items`;
      return { entries: [], skipped: sorted.map((object) => ({ object, code: 'group-too-large', reason })) };
    }
    return { entries: [{ unit: { kind: 'group', id: stage, etag: unitEtag(sorted), members: sorted } }], skipped: [] };
  }
  const media = sorted.filter((o) => o.modality !== 'text');
  const texts = sorted.filter((o) => o.modality === 'text');
  // the first sidecar extension in the configured order wins; other texts are unpaired
  const caption = c.sidecar.map((ext) => texts.find((t) => extensionOf(t.key) === ext)).find((t) => t !== undefined);
  const out: Formed = { entries: [], skipped: [] };
  const push = (f: Formed): void => {
    out.entries.push(...f.entries);
    out.skipped.push(...f.skipped);
  };
  for (const m of media) {
    if (caption) {
      const pair = [m, caption];
      out.entries.push({ unit: { kind: 'pair', id: m.key, etag: unitEtag(pair), members: pair } });
    } else {
      push(unpaired(m, c, `no sidecar text (${c.sidecar.map((e) => `${stem(m.key)}.${e}`).join(' or ')}) beside it`));
    }
  }
  for (const t of texts) {
    if (t === caption && media.length > 0) continue;
    push(
      unpaired(
        t,
        c,
        t === caption
          ? 'no image or video with the same name'
          : `${stem(t.key)} has a sidecar in an earlier extension of --fuse-sidecar`,
      ),
    );
  }
  return out;
}

/**
 * The key a unit's points are stored under, for point ids: a pair's is its media key (a
 * pair replaces the media's plain point); a group's cannot be an object key (NUL never
 * occurs in S3 keys), so a group never collides with an object.
 */
export function unitPointKey(u: Pick<Unit, 'kind' | 'id'>): string {
  return u.kind === 'group' ? groupPointKey(u.id) : u.id;
}

export function groupPointKey(groupId: string): string {
  return `\u0000group\u0000${groupId}`;
}

/** A group's parts: its images in key order, 8 a part. */
export function groupParts<T>(members: readonly T[]): T[][] {
  const parts: T[][] = [];
  for (let i = 0; i < members.length; i += GROUP_PART_MAX) parts.push(members.slice(i, i + GROUP_PART_MAX));
  return parts;
}

/**
 * Reads a stage walk (members in stage order, in chunks) and yields, for each chunk, the
 * stages it completed with all their members. A stage that goes on past the end of a chunk
 * is carried into the next; the last yield holds the final stage.
 */
export async function* completeStages<T>(
  chunks: AsyncIterable<readonly { stage: string; object: T }[]>,
): AsyncGenerator<{ stage: string; members: T[] }[]> {
  let open: { stage: string; members: T[] } | undefined;
  for await (const chunk of chunks) {
    const done: { stage: string; members: T[] }[] = [];
    for (const { stage, object } of chunk) {
      if (open && open.stage !== stage) {
        done.push(open);
        open = undefined;
      }
      open ??= { stage, members: [] };
      open.members.push(object);
    }
    yield done;
  }
  if (open) yield [open];
}
