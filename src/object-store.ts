/**
 * The object store as the pipeline sees it: list a page, read an object (or its first
 * bytes), and presign a GET. The S3 implementation lives in `s3-store.ts`; unit tests
 * use a fake behind this interface.
 */
import { ServiceError } from './errors.js';
import type { Decision } from './errors.js';

export interface ObjectInfo {
  readonly bucket: string;
  readonly key: string;
  /** The ETag without quotes. */
  readonly etag: string;
  readonly size: number;
  /** ISO 8601. */
  readonly lastModified: string;
}

export interface ListPage {
  readonly objects: readonly ObjectInfo[];
  /** Continuation token of the next page; undefined on the last page. */
  readonly nextToken?: string;
}

export interface FetchedObject {
  readonly bytes: Uint8Array;
  readonly etag: string;
  readonly contentType?: string;
  /** The whole object's size (of a range read too), where the store said it. */
  readonly size?: number;
  /** ISO 8601 in whole seconds, where the store said it. */
  readonly lastModified?: string;
}

/**
 * A failed object store call. Its decision (see `Decision`): `gone` (NoSuchKey), `retryable`
 * (throttling such as 503 SlowDown, 5xx, network), `fatal` (credentials or permissions) or
 * `request` (anything else: a missing bucket, a bad range).
 */
export class ObjectStoreError extends ServiceError {
  override readonly name = 'ObjectStoreError';
  readonly service = 'object store';
  constructor(decision: ObjectStoreDecision, code: string, message: string) {
    super(message, code, decision);
  }
}

export type ObjectStoreDecision = Extract<Decision, 'gone' | 'retryable' | 'fatal' | 'request'>;

export interface ObjectStore {
  /** One page of ListObjectsV2 under `prefix`, in key order. */
  listPage(bucket: string, prefix: string, continuationToken?: string, pageSize?: number): Promise<ListPage>;
  /**
   * Every page under `prefix` from `continuationToken` on, in order, listed ahead of the
   * caller by a bounded number of pages (S3: from a thread of its own, list-thread.ts). A
   * store without it is listed by `listPage`, one page ahead (scanner.ts).
   */
  listPages?(bucket: string, prefix: string, continuationToken?: string, pageSize?: number): AsyncIterable<ListPage>;
  /** The whole object, or bytes [start, end] inclusive when `range` is given. */
  get(bucket: string, key: string, range?: readonly [number, number]): Promise<FetchedObject>;
  /** The object's listing facts, or undefined when it does not exist (HeadObject). */
  head(bucket: string, key: string): Promise<ObjectInfo | undefined>;
  /** A presigned GET URL valid for `expiresInSeconds`. Never stored or logged. */
  presign(bucket: string, key: string, expiresInSeconds: number): Promise<string>;
}
