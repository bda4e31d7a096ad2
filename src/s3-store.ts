/**
 * The ObjectStore over the S3 protocol (AWS S3, MinIO, s3rver, any S3-compatible store).
 *
 * Retries are the SDK's own (standard mode: exponential backoff with jitter, a retry
 * quota, throttling and 5xx and network errors): when a call still fails, the error is
 * mapped once, here, to an ObjectStoreError whose decision tells the caller what to do.
 */
import {
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { ConfigError } from './errors.js';
import { ObjectStoreError } from './object-store.js';
import { toStoreError } from './s3-errors.js';
import type { SdkErrorShape } from './s3-errors.js';
import { redact } from './redact.js';
import { DEFAULT_LIST_AHEAD, ListThread } from './list-thread.js';
import type { ListedColumns } from './list-thread.js';
import type { FetchedObject, ListPage, ObjectInfo, ObjectStore } from './object-store.js';

export interface S3StoreOptions {
  /** An S3-compatible endpoint (`http://127.0.0.1:9000`). @defaultValue undefined: AWS S3 */
  readonly endpoint?: string;
  /** @defaultValue the SDK's region chain for AWS, `us-east-1` with an endpoint */
  readonly region?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible stores need. @defaultValue true with an endpoint, false for AWS */
  readonly forcePathStyle?: boolean;
  /** @defaultValue the SDK's default credential chain (environment, profile, instance role) */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** Attempts per call, first one included, for the SDK's standard retry strategy. @defaultValue 5 */
  readonly maxAttempts?: number;
  /**
   * `listPages` lists from a thread of its own at most this many pages ahead of the pages
   * taken (list-thread.ts); 0: no thread, the scan lists one page ahead with `listPage`.
   * @defaultValue 2
   */
  readonly listAhead?: number;
}

/** An ObjectStore that can also say whether its endpoint answers at all (for a command's start). */
export interface S3Store extends ObjectStore {
  /**
   * One HeadBucket within `timeoutMs`: undefined once the endpoint answered anything (the
   * bucket may still be missing or refused, which the command then meets itself), else
   * why no answer came (refused, unresolvable, silent).
   */
  answers(bucket: string, timeoutMs: number): Promise<string | undefined>;
  /**
   * Starts the thread the next `listPages` lists from, so that it loads while the command
   * connects to its other services (nothing without a listing thread).
   */
  prepareListing(): void;
}

const DEFAULT_MAX_ATTEMPTS = 5;

/** S3 never returns more than 1,000 keys per page. */
const MAX_PAGE_SIZE = 1000;

export function createS3Store(opts: S3StoreOptions = {}): S3Store {
  const endpoint = opts.endpoint?.trim() ? opts.endpoint.trim() : undefined;
  const maxAttempts = opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new ConfigError('maxAttempts', `must be a positive integer, got ${maxAttempts}`);
  }
  // without a region the SDK reads AWS_REGION and the profile; without credentials, its default chain
  const region = opts.region?.trim() ? opts.region.trim() : endpoint ? 'us-east-1' : undefined;
  const credentials = opts.credentials;
  const config: S3ClientConfig = {
    ...(endpoint !== undefined ? { endpoint } : {}),
    ...(region !== undefined ? { region } : {}),
    forcePathStyle: opts.forcePathStyle ?? endpoint !== undefined,
    ...(credentials
      ? { credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey } }
      : {}),
    retryMode: 'standard',
    maxAttempts,
    // Not an s3rver workaround (MinIO takes the SDK's defaults): these calls only read, and
    // the SDK's default integrity mode (since 3.729) signs GetObject with
    // `x-amz-checksum-mode: ENABLED`, so a presigned GET would need that header from whoever
    // downloads it (the embedding API does not send it; aws-sdk-js-v3#6994), and stores such
    // as Cloudflare R2, GCS's S3 API or Dell ECS refuse the checksum headers (aws-sdk-js-v3#6810).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // On AWS a bucket in another region answers 301; follow it rather than fail the run.
    followRegionRedirects: endpoint === undefined,
    // A worker sends one GetObject per text: the middleware stack, resolved again for every
    // call by default (copying and sorting some forty entries), is resolved once per command
    // class. Nothing here changes the stack after the client is made (presigning resolves
    // its own, apart from `send`).
    cacheMiddleware: true,
  };
  const listAhead = opts.listAhead ?? DEFAULT_LIST_AHEAD;
  if (!Number.isInteger(listAhead) || listAhead < 0) {
    throw new ConfigError('listAhead', `must be a whole number of pages, got ${listAhead}`);
  }
  // the listing thread builds its own client from the same settings (plain values)
  const threadConfig = structuredClone(config);
  const client = new S3Client(config);
  // The SDK's logger middleware copies every call's input and output through the schema's
  // sensitive-field filter to hand them to its logger, which mm-ingest leaves a no-op: the
  // copies were made for nothing (about 2% of a worker's CPU on short texts).
  client.middlewareStack.remove('loggerMiddleware');

  const checkPageSize = (pageSize: number | undefined): void => {
    if (pageSize !== undefined && (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE)) {
      throw new ConfigError('pageSize', `must be an integer from 1 to ${MAX_PAGE_SIZE}, got ${pageSize}`);
    }
  };

  // a listing thread started ahead of its listing (prepareListing), taken by the next listPages
  let spare: ListThread | undefined;

  const store: S3Store = {
    prepareListing(): void {
      if (listAhead > 0) spare ??= new ListThread(threadConfig);
    },

    async listPage(bucket: string, prefix: string, continuationToken?: string, pageSize?: number): Promise<ListPage> {
      checkPageSize(pageSize);
      try {
        // Keys come URL-encoded: XML 1.0 cannot carry most control characters, and stores
        // put U+FFFD in their place (MinIO does for ESC and U+FFFE), so the key listed would
        // not be the object's. The SDK does not decode them; only the values S3 encodes
        // (Key here; Prefix, StartAfter, Delimiter, unused) are: the request's Prefix and the
        // continuation token (opaque) go as they are.
        const out = await client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: prefix === '' ? undefined : prefix,
            ContinuationToken: continuationToken,
            MaxKeys: pageSize,
            EncodingType: 'url',
          }),
        );
        const encoded = out.EncodingType === 'url';
        const objects: ObjectInfo[] = [];
        for (const item of out.Contents ?? []) {
          if (item.Key === undefined) continue;
          objects.push({
            bucket,
            key: encoded ? decodeListedKey(item.Key) : item.Key,
            etag: unquote(item.ETag),
            size: item.Size ?? 0,
            lastModified: wholeSeconds(item.LastModified),
          });
        }
        // Some stores send a token on the last page; IsTruncated is what says "more".
        const nextToken = out.IsTruncated ? out.NextContinuationToken : undefined;
        return nextToken ? { objects, nextToken } : { objects };
      } catch (err) {
        throw toStoreError(err, 'ListObjectsV2', `s3://${bucket}/${prefix}`);
      }
    },

    listPages(bucket: string, prefix: string, continuationToken?: string, pageSize?: number): AsyncIterable<ListPage> {
      checkPageSize(pageSize);
      // the same request as listPage's, from the thread; its columns decoded here the same way
      const toPage = (page: ListedColumns): ListPage => {
        const { keys, etags, sizes, modified, encoded, nextToken } = page;
        const objects: ObjectInfo[] = new Array<ObjectInfo>(keys.length);
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i]!;
          const ms = modified[i]!;
          objects[i] = {
            bucket,
            key: encoded ? decodeListedKey(key) : key,
            etag: unquote(etags[i]),
            size: sizes[i]!,
            lastModified: wholeSeconds(Number.isNaN(ms) ? undefined : ms),
          };
        }
        return nextToken !== undefined ? { objects, nextToken } : { objects };
      };
      const thread = spare ?? new ListThread(threadConfig);
      spare = undefined;
      return thread.pages(
        { bucket, prefix, startToken: continuationToken, pageSize, ahead: listAhead },
        toPage,
        (shape) => toStoreError(shape, 'ListObjectsV2', `s3://${bucket}/${prefix}`),
      );
    },

    async get(bucket: string, key: string, range?: readonly [number, number]): Promise<FetchedObject> {
      if (
        range &&
        !(Number.isInteger(range[0]) && Number.isInteger(range[1]) && range[0] >= 0 && range[1] >= range[0])
      ) {
        throw new ObjectStoreError(
          'request',
          'InvalidRange',
          `GetObject s3://${bucket}/${key}: invalid range [${range[0]}, ${range[1]}]`,
        );
      }
      try {
        const out = await client.send(
          new GetObjectCommand({
            Bucket: bucket,
            Key: key,
            Range: range ? `bytes=${range[0]}-${range[1]}` : undefined,
          }),
        );
        // The body is read inside the try: a connection reset mid-body is transient too.
        const bytes = out.Body ? await out.Body.transformToByteArray() : new Uint8Array(0);
        // a range's answer says the whole size after the slash of Content-Range: "bytes 0-99/1234"
        const total = /\/(\d+)$/.exec(out.ContentRange ?? '')?.[1];
        const size = total !== undefined ? Number(total) : range ? undefined : out.ContentLength;
        return {
          bytes,
          etag: unquote(out.ETag),
          ...(out.ContentType ? { contentType: out.ContentType } : {}),
          ...(size !== undefined ? { size } : {}),
          ...(out.LastModified ? { lastModified: wholeSeconds(out.LastModified) } : {}),
        };
      } catch (err) {
        throw toStoreError(err, 'GetObject', `s3://${bucket}/${key}`);
      }
    },

    async head(bucket: string, key: string): Promise<ObjectInfo | undefined> {
      try {
        const out = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return {
          bucket,
          key,
          etag: unquote(out.ETag),
          size: out.ContentLength ?? 0,
          lastModified: wholeSeconds(out.LastModified),
        };
      } catch (err) {
        const e = toStoreError(err, 'HeadObject', `s3://${bucket}/${key}`);
        // HEAD answers have no body: a missing key is a bare 404 ("NotFound")
        if (
          e.decision === 'gone' ||
          (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404
        )
          return undefined;
        throw e;
      }
    },

    async answers(bucket: string, timeoutMs: number): Promise<string | undefined> {
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: AbortSignal.timeout(timeoutMs) });
        return undefined;
      } catch (err) {
        const e = (typeof err === 'object' && err !== null ? err : {}) as SdkErrorShape;
        if (typeof e.$metadata?.httpStatusCode === 'number') return undefined; // 403, 404, 301: an answer
        if (e.name === 'AbortError' || e.name === 'TimeoutError')
          return `no answer within ${timeoutMs} ms (CONNECT_TIMEOUT_MS)`;
        const failed = toStoreError(err, 'HeadBucket', `s3://${bucket}`);
        // missing credentials are not the endpoint's doing: the command says so itself
        if (failed.decision !== 'retryable') return undefined;
        const message = typeof e.message === 'string' && e.message !== '' ? e.message : failed.code;
        return redact(message);
      }
    },

    async presign(bucket: string, key: string, expiresInSeconds: number): Promise<string> {
      try {
        return await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), {
          expiresIn: expiresInSeconds,
        });
      } catch (err) {
        throw toStoreError(err, 'Presign', `s3://${bucket}/${key}`);
      }
    },
  };
  // a store with no listing thread lists in the caller's, one page ahead (scanner.ts)
  if (listAhead === 0) delete store.listPages;
  return store;
}

/**
 * A key of a listing made with `EncodingType=url`: S3 and MinIO encode it as a query
 * value (a space as `+`, a `+` as `%2B`), so `+` is a space before percent-decoding.
 */
export function decodeListedKey(key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' '));
  } catch {
    // a store that says it encoded but did not (a bare `%`): the key as sent is the best guess
    return key;
  }
}

function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^(W\/)?"|"$/g, '');
}

/**
 * An object's Last-Modified to the second: a listing gives milliseconds (MinIO) but HEAD an
 * HTTP date, so a key indexed from an event (HEAD) and the same key indexed by a scan carry
 * the same value.
 */
// the last time formatted: a listing's objects often share their LastModified
let lastSecond = { ms: NaN, iso: '' };

function wholeSeconds(date: Date | number | undefined): string {
  const ms = date === undefined ? 0 : typeof date === 'number' ? date : date.getTime();
  const whole = ms - (((ms % 1000) + 1000) % 1000);
  if (whole !== lastSecond.ms) lastSecond = { ms: whole, iso: new Date(whole).toISOString() };
  return lastSecond.iso;
}
