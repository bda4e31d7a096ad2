/**
 * `scan`: lists a bucket/prefix page by page and sorts each object into one of three
 * piles, from its key and listing metadata only (nothing is downloaded):
 * - objects: texts, images and videos to embed, with their modality and claimed format;
 * - skipped: objects the run cannot embed, each with a code and a reason for the report;
 * - filtered out: objects the user's globs or size bounds leave out; only counted.
 *
 * The listing runs ahead of the pages yielded by a bound: on S3 a thread of its own lists
 * up to LIST_AHEAD_PAGES pages the scan has not taken (list-thread.ts); a store without
 * `listPages` is listed one page ahead. A producer waiting for room in the queue takes no
 * page, so the listing stops there too: a bucket of any size scans in constant memory, and
 * a page's `token` lets a stopped scan resume at that page.
 */
import picomatch from 'picomatch/posix.js';
import { DEFAULT_BOUNDS, overBound } from './bounds.js';
import type { ReadBounds } from './bounds.js';
import { ConfigError } from './errors.js';
import { classifyKey } from './media.js';
import { canConvert } from './fixup.js';
import type { ImageFormat, ModelSpec, VideoFormat } from './models.js';
import type { ListPage, ObjectInfo, ObjectStore } from './object-store.js';

export interface ScanOptions {
  readonly bucket: string;
  /** Only keys starting with this. @defaultValue '' (the whole bucket) */
  readonly prefix?: string | undefined;
  /**
   * Globs (picomatch, `dot: true`, `/` as separator) a key must match to be scanned.
   * A glob matches when it matches either the key relative to the prefix (the prefix
   * and then any leading `/` removed: `a.jpg` for `photos/a.jpg` under `photos/`) or the
   * full key. `*` stops at `/`; use `**` to cross folders (`**\/*.jpg`).
   * @defaultValue [] (every key)
   */
  readonly include?: readonly string[] | undefined;
  /** Globs, matched like `include`, that leave a key out even if included. @defaultValue [] */
  readonly exclude?: readonly string[] | undefined;
  /** Smallest size in bytes to scan, inclusive. @defaultValue no bound */
  readonly minSize?: number | undefined;
  /** Largest size in bytes to scan, inclusive. @defaultValue no bound */
  readonly maxSize?: number | undefined;
  /** Keys per listing request, 1 to 1,000. @defaultValue the store's (1,000 on S3) */
  readonly pageSize?: number | undefined;
  /** Resume from a page's `token` (as reported by an earlier scan). @defaultValue the first page */
  readonly startAfterToken?: string | undefined;
  /** The model whose formats and byte limits decide what is skipped. */
  readonly model: ModelSpec;
  /** Texts and images over these are skipped (`too-large`), never read. @defaultValue DEFAULT_BOUNDS (bounds.ts) */
  readonly bounds?: ReadBounds;
}

export type ScannedObject = ObjectInfo &
  ({ modality: 'text' } | { modality: 'image'; format: ImageFormat } | { modality: 'video'; format: VideoFormat });

/**
 * - `directory-marker`: a key ending in `/` (a folder placeholder, no content).
 * - `unsupported-type`: the extension is not a known text, image or video type.
 * - `zero-bytes`: nothing to embed.
 * - `unsupported-format`: an image or video format the model does not take.
 * - `too-large`: a text or image over the read bounds (MAX_TEXT_BYTES, MAX_IMAGE_BYTES:
 *   bounds.ts), or a video over the model's byte limit (videos cannot be shrunk here).
 * - `unpaired`: in a fused run, an object with no partner (compose.ts).
 * - `group-too-large`: in a grouped run, an image of a group over GROUP_MAX_IMAGES (compose.ts).
 * - `unreachable-url`: a video, which goes to the API by URL, of a store the provider
 *   cannot reach (media-urls.ts; ALLOW_PRIVATE_MEDIA_URLS=true when it can).
 */
export type SkipCode =
  | 'directory-marker'
  | 'unsupported-type'
  | 'zero-bytes'
  | 'unsupported-format'
  | 'too-large'
  | 'unpaired'
  | 'group-too-large'
  | 'unreachable-url';

export interface SkippedObject {
  readonly object: ObjectInfo;
  readonly code: SkipCode;
  readonly reason: string;
}

export interface ScanPage {
  /** 1 for the first page this scan listed (a resumed scan counts from 1 again). */
  readonly pageNumber: number;
  /** The token this page was listed with; undefined for the first page of a bucket/prefix. */
  readonly token?: string;
  /** The token of the next page; undefined on the last page. */
  readonly nextToken?: string;
  readonly objects: ScannedObject[];
  readonly skipped: SkippedObject[];
  /** Objects left out by include/exclude globs or the size bounds. */
  readonly filteredOut: number;
  /** Every key the page listed, filtered out or not (what exists, for pruning). */
  readonly listedKeys: string[];
}

export async function* scanPages(store: ObjectStore, opts: ScanOptions): AsyncGenerator<ScanPage> {
  validate(opts);
  const prefix = opts.prefix ?? '';
  const keep = keyFilter(prefix, opts.include ?? [], opts.exclude ?? []);
  let token = opts.startAfterToken;
  let pageNumber = 0;
  const listed = store.listPages
    ? store.listPages(opts.bucket, prefix, token, opts.pageSize)
    : oneAhead(store, opts.bucket, prefix, token, opts.pageSize);
  for await (const page of listed) {
    pageNumber += 1;
    const objects: ScannedObject[] = [];
    const skipped: SkippedObject[] = [];
    let filteredOut = 0;
    for (const object of page.objects) {
      if (!keep(object.key) || !withinSize(object.size, opts)) {
        filteredOut += 1;
        continue;
      }
      const verdict = classify(object, opts.model, opts.bounds);
      if ('code' in verdict) skipped.push(verdict);
      else objects.push(verdict);
    }
    yield {
      pageNumber,
      ...(token !== undefined ? { token } : {}),
      ...(page.nextToken !== undefined ? { nextToken: page.nextToken } : {}),
      objects,
      skipped,
      filteredOut,
      listedKeys: page.objects.map((o) => o.key),
    };
    token = page.nextToken;
  }
}

/** A listing by `listPage`, the next page listed while the caller works on this one. */
async function* oneAhead(
  store: ObjectStore,
  bucket: string,
  prefix: string,
  startToken: string | undefined,
  pageSize: number | undefined,
): AsyncGenerator<ListPage> {
  let listing = store.listPage(bucket, prefix, startToken, pageSize);
  for (;;) {
    const listed = await listing;
    // the next page is listed while this one is classified, looked up and queued (at most
    // one page ahead: a producer waiting for room in the queue holds it, lists no further)
    if (listed.nextToken === undefined) {
      yield listed;
      return;
    }
    listing = store.listPage(bucket, prefix, listed.nextToken, pageSize);
    // a scan stopped before it reads the page it listed ahead must not leave a rejection unheard
    listing.catch(() => undefined);
    yield listed;
  }
}

/** What one listed object is to the run: something to embed, or a skip with its reason. */
export function classify(
  object: ObjectInfo,
  model: ModelSpec,
  bounds: ReadBounds = DEFAULT_BOUNDS,
): ScannedObject | SkippedObject {
  if (object.key.endsWith('/'))
    return skipped(object, 'directory-marker', 'key ends in "/": a folder placeholder, not a file');
  const kind = classifyKey(object.key);
  if (!kind)
    return skipped(
      object,
      'unsupported-type',
      `"${extensionLabel(object.key)}" is not a supported text, image or video type`,
    );
  if (object.size === 0) return skipped(object, 'zero-bytes', `zero-byte ${kind.modality}: nothing to embed`);
  if (kind.modality === 'text' && object.size <= bounds.maxTextBytes) {
    // most of a bucket, one object a time: built field by field (a spread costs more)
    const { bucket, key, etag, size, lastModified } = object;
    return { bucket, key, etag, size, lastModified, modality: 'text' };
  }
  if (kind.modality !== 'video') {
    // over what one worker should hold: skipped from the listing's size, never downloaded
    const over = overBound(kind.modality, object.size, bounds);
    if (over) return skipped(object, 'too-large', over);
  }
  if (kind.modality === 'image') {
    // Images over the byte limit, or in a format the model does not take but that can be
    // converted, are kept: the worker makes them acceptable (fixup.ts).
    if (!model.imageFormats.includes(kind.format) && !canConvert(kind.format)) {
      return skipped(
        object,
        'unsupported-format',
        `${model.name} does not take ${kind.format} images (it takes ${model.imageFormats.join(', ')}), and they cannot be converted here`,
      );
    }
    return { ...object, ...kind };
  }
  if (kind.modality === 'video') {
    if (!model.videoFormats.includes(kind.format)) {
      return skipped(
        object,
        'unsupported-format',
        `${model.name} does not take ${kind.format} videos (it takes ${model.videoFormats.join(', ')})`,
      );
    }
    // A video goes to the API by URL as it is: nothing in the pipeline can make it smaller.
    if (object.size > model.videoMaxBytes) {
      return skipped(
        object,
        'too-large',
        `video of ${object.size} bytes is over ${model.name}'s limit of ${model.videoMaxBytes} bytes`,
      );
    }
    if (bounds.videoUrlProblem !== undefined)
      return skipped(object, 'unreachable-url', `videos go to the API by URL, and ${bounds.videoUrlProblem}`);
    return { ...object, ...kind };
  }
  return { ...object, ...kind };
}

const skipped = (object: ObjectInfo, code: SkipCode, reason: string): SkippedObject => ({ object, code, reason });

function extensionLabel(key: string): string {
  const base = key.slice(key.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot <= 0 ? `${base} (no extension)` : base.slice(dot);
}

/** The scope of a scan as a predicate: would it list and keep this key of this size? */
export function inScope(
  opts: Pick<ScanOptions, 'prefix' | 'include' | 'exclude' | 'minSize' | 'maxSize'>,
): (key: string, size: number) => boolean {
  const prefix = opts.prefix ?? '';
  const keep = keyFilter(prefix, opts.include ?? [], opts.exclude ?? []);
  return (key, size) => key.startsWith(prefix) && keep(key) && withinSize(size, opts);
}

function keyFilter(prefix: string, include: readonly string[], exclude: readonly string[]): (key: string) => boolean {
  const options = { dot: true };
  const included = include.length > 0 ? picomatch([...include], options) : () => true;
  const excluded = exclude.length > 0 ? picomatch([...exclude], options) : () => false;
  const matches = (test: (s: string) => boolean, key: string): boolean => {
    const relative = (key.startsWith(prefix) ? key.slice(prefix.length) : key).replace(/^\/+/, '');
    return test(relative) || test(key);
  };
  return (key) => matches(included, key) && !matches(excluded, key);
}

function withinSize(size: number, opts: Pick<ScanOptions, 'minSize' | 'maxSize'>): boolean {
  return (opts.minSize === undefined || size >= opts.minSize) && (opts.maxSize === undefined || size <= opts.maxSize);
}

function validate(opts: ScanOptions): void {
  if (opts.bucket.trim() === '') throw new ConfigError('bucket', 'must not be empty');
  const { pageSize, minSize, maxSize } = opts;
  if (pageSize !== undefined && !(Number.isInteger(pageSize) && pageSize >= 1 && pageSize <= 1000)) {
    throw new ConfigError('pageSize', `must be an integer from 1 to 1000, got ${pageSize}`);
  }
  for (const [name, value] of [
    ['minSize', minSize],
    ['maxSize', maxSize],
  ] as const) {
    if (value !== undefined && !(Number.isInteger(value) && value >= 0)) {
      throw new ConfigError(name, `must be a whole number of bytes, got ${value}`);
    }
  }
  if (minSize !== undefined && maxSize !== undefined && minSize > maxSize) {
    throw new ConfigError('minSize', `${minSize} is larger than maxSize ${maxSize}`);
  }
  for (const glob of [...(opts.include ?? []), ...(opts.exclude ?? [])]) {
    if (glob.trim() === '') throw new ConfigError('include/exclude', 'a glob must not be empty');
  }
}
