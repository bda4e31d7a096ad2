/**
 * Groups scanned objects into jobs of about one API request each, from what the listing
 * tells (key, size): the worker plans exactly once it has the bytes. Next-fit on
 * estimates, so the producer streams and holds at most one open job.
 *
 * Text tokens are estimated at `bytesPerToken` bytes a token (English runs about 4, CJK
 * about 2): an under-estimate makes a job of two requests, an over-estimate an
 * under-filled request, so the middle is the right default.
 */
import { entryObjects, GROUP_PART_MAX } from './compose.js';
import type { Entry } from './compose.js';
import type { ModelSpec } from './models.js';
import { DEFAULT_MAX_BODY_BYTES } from './plan-limits.js';
import type { ScannedObject } from './scanner.js';

export interface BatchOptions {
  readonly model: ModelSpec;
  readonly chunkTokens?: number;
  readonly imageMode: 'inline' | 'url';
  readonly maxBodyBytes?: number;
  /** Bound on objects a job (keeps job data small). @defaultValue 50 */
  readonly maxObjectsPerJob?: number;
  /** @defaultValue 3 */
  readonly bytesPerToken?: number;
}

interface Cost {
  elements: number;
  images: number;
  videos: number;
  tokens: number;
  bytes: number;
}

/** URL of a presigned GET, as it will appear in a request body. */
const URL_BYTES = 1200;

export function estimateCost(o: ScannedObject, opts: BatchOptions): Cost {
  const { model } = opts;
  if (o.modality === 'text') {
    const tokens = Math.ceil(o.size / (opts.bytesPerToken ?? 3));
    const cap = Math.min(model.textTokenLimit, opts.chunkTokens ?? model.textTokenLimit);
    return {
      elements: Math.max(1, Math.ceil(tokens / cap)),
      images: 0,
      videos: 0,
      tokens,
      bytes: Math.ceil(o.size * 1.1) + 8,
    };
  }
  if (o.modality === 'image') {
    // an image over the model's limit is downscaled to fit it before it is sent
    const sent = Math.min(o.size, model.imageMaxBytes);
    return {
      elements: 1,
      images: 1,
      videos: 0,
      tokens: 0,
      bytes: opts.imageMode === 'inline' ? Math.ceil(sent / 3) * 4 + 40 : URL_BYTES,
    };
  }
  return { elements: 1, images: 0, videos: 1, tokens: 0, bytes: URL_BYTES };
}

/** An entry's cost: its objects', but a unit is one element (a group: one a part of 8). */
export function entryCost(e: Entry, opts: BatchOptions): Cost {
  const total: Cost = { elements: 0, images: 0, videos: 0, tokens: 0, bytes: 0 };
  for (const o of entryObjects(e)) {
    const c = estimateCost(o, opts);
    for (const k of Object.keys(total) as (keyof Cost)[]) total[k] += c[k];
  }
  if ('unit' in e) total.elements = e.unit.kind === 'group' ? Math.ceil(e.unit.members.length / GROUP_PART_MAX) : 1;
  return total;
}

/** Groups entries (objects, or units that stay whole) into jobs of about one request. */
export class Batcher {
  private current: Entry[] = [];
  private objects = 0;
  private used: Cost = { elements: 0, images: 0, videos: 0, tokens: 0, bytes: 0 };
  private readonly caps: Cost;
  private readonly maxObjects: number;

  constructor(private readonly opts: BatchOptions) {
    const m = opts.model;
    this.caps = {
      elements: m.maxElements ?? Infinity,
      images: m.maxImagesPerRequest ?? Infinity,
      videos: m.maxVideosPerRequest ?? Infinity,
      tokens: m.textLimitScope === 'per-request' ? m.textTokenLimit : Infinity,
      bytes: (opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES) - 1024,
    };
    this.maxObjects = opts.maxObjectsPerJob ?? 50;
  }

  /** Adds an entry; returns the job it closed, if adding it closed one. A unit over the caps is a job of its own. */
  add(e: Entry): Entry[] | undefined {
    const cost = entryCost(e, this.opts);
    const count = entryObjects(e).length;
    const fits =
      this.objects + count <= this.maxObjects &&
      (Object.keys(cost) as (keyof Cost)[]).every((k) => this.used[k] + cost[k] <= this.caps[k]);
    let closed: Entry[] | undefined;
    if (!fits && this.current.length > 0) closed = this.flush();
    this.current.push(e);
    this.objects += count;
    for (const k of Object.keys(cost) as (keyof Cost)[]) this.used[k] += cost[k];
    return closed;
  }

  /** Closes the open job (at the end of a page or of the scan). */
  flush(): Entry[] | undefined {
    if (this.current.length === 0) return undefined;
    const job = this.current;
    this.current = [];
    this.objects = 0;
    this.used = { elements: 0, images: 0, videos: 0, tokens: 0, bytes: 0 };
    return job;
  }
}
