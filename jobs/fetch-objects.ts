/**
 * Fetch and prepare, the embed job's first steps: each object's bytes (never more than its
 * bound), then a prepared input or the outcome that says why there is none (skipped with a
 * reason, vanished since the scan). Videos and URL-mode images are presigned here, at call
 * time; the URL lives only in the request body. `resign` signs an input's URLs again when
 * the provider could not download them.
 */
import { DEFAULT_BOUNDS, grewPastBound } from '../src/bounds.js';
import type { ReadBounds } from '../src/bounds.js';
import type { Prepared, Target } from '../src/assemble.js';
import type { ObjectRef } from '../src/embed-job.js';
import { fixImage } from '../src/fixup.js';
import { classifyKey } from '../src/media.js';
import type { ModelSpec } from '../src/models.js';
import { ObjectStoreError } from '../src/object-store.js';
import type { FetchedObject, ObjectStore } from '../src/object-store.js';
import type { PlannedInput } from '../src/planned-input.js';
import type { TextChunking } from '../src/prepared-input.js';
import { prepareImage, prepareTextInSlices, prepareVideo } from '../src/prepare.js';
import type { TokenCounter } from '../src/tokens.js';

/**
 * First bytes of a video: enough to recognise its container, and for a fast-start MP4 or
 * MOV to read its length (`mvhd` comes right after `ftyp`), which its token estimate uses.
 */
const VIDEO_HEAD_BYTES = 4096;

export interface FetchDeps {
  readonly store: ObjectStore;
  readonly tokens: TokenCounter;
  /** Most of a text or image read. @defaultValue DEFAULT_BOUNDS */
  readonly bounds?: ReadBounds | undefined;
  /** Lifetime of presigned URLs. @defaultValue 3600 */
  readonly presignSeconds?: number | undefined;
}

/** How one job prepares: the model, how images travel, a data URI's cap, text chunking. */
export interface PrepareOptions {
  readonly spec: ModelSpec;
  readonly imageMode: 'inline' | 'url';
  readonly chunking: TextChunking;
}

export interface Fetcher {
  prepare(bucket: string, ref: ObjectRef, opts: PrepareOptions, maxDataUriBytes: number): Promise<Prepared>;
  resign(bucket: string, input: PlannedInput, targets: ReadonlyMap<string, Target>): Promise<PlannedInput | undefined>;
}

export function createFetcher(deps: FetchDeps): Fetcher {
  const bounds = deps.bounds ?? DEFAULT_BOUNDS;
  const presignSeconds = deps.presignSeconds ?? 3600;

  /**
   * An object's bytes, never more than its bound plus one (an object that grew past it
   * after the scan is not read whole); `over` when it is over the bound. An object that
   * became empty answers a range with InvalidRange: it is read as zero bytes.
   */
  async function fetchBounded(
    bucket: string,
    ref: ObjectRef,
    maxBytes: number,
  ): Promise<FetchedObject & { over: boolean }> {
    try {
      const object = await deps.store.get(bucket, ref.key, [0, maxBytes]);
      return { ...object, over: object.bytes.length > maxBytes };
    } catch (err) {
      if (err instanceof ObjectStoreError && err.code === 'InvalidRange')
        return { bytes: new Uint8Array(0), etag: ref.etag, over: false };
      throw err;
    }
  }

  /**
   * The fetched version's size and time when it is not the version the scan listed (it
   * changed in between): the point then describes the bytes embedded, not the listing.
   */
  function versionOf(ref: ObjectRef, fetched: FetchedObject): Prepared['version'] {
    if (fetched.etag === ref.etag || fetched.size === undefined || fetched.lastModified === undefined) return undefined;
    return { size: fetched.size, lastModified: fetched.lastModified };
  }

  async function prepare(
    bucket: string,
    ref: ObjectRef,
    { spec, imageMode, chunking }: PrepareOptions,
    maxDataUriBytes: number,
  ): Promise<Prepared> {
    const skip = (code: string, reason: string, etag = ref.etag): Prepared => ({
      ref,
      etag,
      outcome: { status: 'skipped', code, reason },
    });
    try {
      if (ref.modality === 'video') {
        const kind = classifyKey(ref.key);
        if (kind?.modality !== 'video') return skip('unsupported-type', 'not a video key');
        const head = await deps.store.get(bucket, ref.key, [0, VIDEO_HEAD_BYTES - 1]);
        // presigned at call time, never stored: it lives only in this request's body
        const url = await deps.store.presign(bucket, ref.key, presignSeconds);
        const version = versionOf(ref, head);
        const r = prepareVideo(ref.key, version?.size ?? ref.size, kind.format, url, head.bytes);
        return 'failure' in r
          ? skip(r.failure.code, r.failure.reason, head.etag)
          : { ref, etag: head.etag, input: r.ok, ...(version ? { version } : {}) };
      }
      const modality = ref.modality === 'text' ? 'text' : 'image';
      const object = await fetchBounded(bucket, ref, modality === 'text' ? bounds.maxTextBytes : bounds.maxImageBytes);
      if (object.over) return skip('too-large', grewPastBound(modality, bounds), object.etag);
      const version = versionOf(ref, object);
      if (ref.modality === 'text') {
        const r = await prepareTextInSlices(ref.key, object.bytes, deps.tokens, chunking);
        return 'failure' in r
          ? skip(r.failure.code, r.failure.reason, object.etag)
          : { ref, etag: object.etag, input: r.ok, ...(version ? { version } : {}) };
      }
      // an image the model cannot take as it is is converted or downscaled (a copy: the
      // object itself is never changed); URL mode can only send the object as it is
      const fixed = await fixImage(object.bytes, spec, imageMode === 'inline' ? { maxDataUriBytes } : {});
      if ('skip' in fixed) return skip(fixed.skip.code, fixed.skip.reason, object.etag);
      if (fixed.fixup && imageMode === 'url') {
        return skip(
          'needs-fixup',
          `${fixed.fixup.actions.join(', ')} would be needed, which URL mode cannot send (use IMAGE_MODE=inline)`,
          object.etag,
        );
      }
      const payload =
        imageMode === 'url'
          ? { kind: 'url' as const, url: await deps.store.presign(bucket, ref.key, presignSeconds) }
          : { kind: 'inline' as const, data: fixed.bytes };
      const r = prepareImage(ref.key, fixed.bytes, payload);
      if ('failure' in r) return skip(r.failure.code, r.failure.reason, object.etag);
      return {
        ref,
        etag: object.etag,
        input: r.ok,
        ...(version ? { version } : {}),
        ...(fixed.fixup ? { fixup: fixed.fixup } : {}),
      };
    } catch (err) {
      if (err instanceof ObjectStoreError && err.decision === 'gone')
        return skip('vanished', 'the object was deleted after the scan');
      // the store refuses this one object (a bucket policy, an object ACL, a KMS key): the
      // object fails with the store's reason and its neighbours go on; a retry repeats it
      if (err instanceof ObjectStoreError && err.code === 'AccessDenied')
        return { ref, etag: ref.etag, outcome: { status: 'failed', code: 'access-denied', reason: err.message } };
      throw err;
    }
  }

  /** The input again with freshly signed URLs (its old ones could not be downloaded). */
  async function resign(
    bucket: string,
    input: PlannedInput,
    targets: ReadonlyMap<string, Target>,
  ): Promise<PlannedInput | undefined> {
    const t = targets.get(input.source);
    const c = input.content;
    if (!t || typeof c === 'string') return undefined;
    const fresh = (m: Prepared | undefined): Promise<string> | undefined =>
      m ? deps.store.presign(bucket, m.ref.key, presignSeconds) : undefined;
    const isUrl = (u: string | undefined): u is string => u !== undefined && !u.startsWith('data:');
    const media = t.members.filter((m) => m.ref.modality !== 'text');
    const next = { ...c };
    if (c.video) next.video = (await fresh(media.find((m) => m.ref.modality === 'video'))) ?? c.video;
    if (isUrl(c.image)) next.image = (await fresh(media.find((m) => m.ref.modality === 'image'))) ?? c.image;
    if (c.multi_images?.some(isUrl))
      next.multi_images = await Promise.all(
        c.multi_images.map(async (u, j) => (isUrl(u) ? ((await fresh(media[j])) ?? u) : u)),
      );
    return JSON.stringify(next) === JSON.stringify(c) ? undefined : { ...input, content: next };
  }

  return { prepare, resign };
}
