/**
 * A bucket's listing from a thread of its own: the ListObjectsV2 calls and the SDK's parse
 * of their XML (most of a scan's CPU) run beside the producer, which meanwhile classifies,
 * looks up and queues the pages already listed. On a machine of two cores the scan is then
 * no longer one thread's CPU.
 *
 * The thread lists at most `ahead` pages that the scan has not yet taken: it is given one
 * credit a page taken, and lists only while it holds one. A producer that waits for room in
 * the queue (backpressure) takes no page, so the thread stops listing `ahead` pages past
 * the one the producer holds. A page is handed over as it was listed (compact columns: keys
 * as the store encoded them, sizes, ETags, times, the next token); the scan turns it into
 * objects, classifies it and yields it with its token exactly as from `listPage`, so the
 * run still records a page only after its jobs are queued, and resumes from that token.
 *
 * A listing error ends the thread's listing; it reaches the scan as the page after the last
 * one listed, mapped by `toStoreError` like a `listPage` error (the same ObjectStoreError,
 * the same message), so nothing listed before it is lost and the scan fails where it would
 * have failed in one thread.
 *
 * Like send-thread.ts, the thread's code is plain JavaScript evaluated by
 * `new Worker(code, { eval: true })`: it needs no loader, so it runs the same from the
 * compiled package, from tsx and under jest. It loads the SDK by the path this module
 * resolves, so the thread uses the same copy whatever the working directory. Loading it
 * takes the thread some 100 ms: `index` starts its thread before it connects to Redis and
 * Qdrant, so that this time passes meanwhile.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import type { ListPage } from './object-store.js';
import type { SdkErrorShape } from './s3-errors.js';

/** What the thread hands over for one page: the listing's columns, as the store sent them. */
interface ListedColumns {
  readonly keys: string[];
  readonly etags: (string | undefined)[];
  readonly sizes: Float64Array;
  /** Last-Modified in ms since the epoch (NaN when the store sent none). */
  readonly modified: Float64Array;
  /** The store URL-encoded the keys (EncodingType=url). */
  readonly encoded: boolean;
  readonly nextToken?: string;
}

type ThreadMessage = { readonly page: ListedColumns } | { readonly error: SdkErrorShape };

export interface ListingRequest {
  readonly bucket: string;
  readonly prefix: string;
  readonly startToken?: string | undefined;
  readonly pageSize?: number | undefined;
  /** Pages listed at most beyond the ones taken, 1 or more. */
  readonly ahead: number;
}

// The thread: loads the SDK and makes its client at once, then waits for its listing
// ({start}). It lists while it holds credits ({more: n} adds n), one ListObjectsV2 a
// credit, and posts each page's columns ({page}) or the call's error ({error}); after the
// last page or an error it lists no more. Sizes and times go as transferred buffers.
const THREAD_CODE = `
const { parentPort, workerData: w } = require('node:worker_threads');
const { S3Client, ListObjectsV2Command } = require(w.sdk);
const client = new S3Client(w.config);
client.middlewareStack.remove('loggerMiddleware');
let job;
let credit = 0;
let token;
let busy = false;
let finished = false;
const shapeOf = (err) => {
  const e = typeof err === 'object' && err !== null ? err : { message: String(err) };
  const meta = e.$metadata || {};
  return {
    name: typeof e.name === 'string' ? e.name : undefined,
    code: typeof e.code === 'string' ? e.code : undefined,
    message: typeof e.message === 'string' ? e.message : String(err),
    $fault: typeof e.$fault === 'string' ? e.$fault : undefined,
    $metadata: { httpStatusCode: meta.httpStatusCode, requestId: meta.requestId },
  };
};
async function pump() {
  if (busy) return;
  busy = true;
  while (credit > 0 && !finished) {
    credit -= 1;
    let out;
    try {
      out = await client.send(new ListObjectsV2Command({
        Bucket: job.bucket,
        Prefix: job.prefix === '' ? undefined : job.prefix,
        ContinuationToken: token,
        MaxKeys: job.pageSize,
        EncodingType: 'url',
      }));
    } catch (err) {
      finished = true;
      parentPort.postMessage({ error: shapeOf(err) });
      break;
    }
    const contents = (out.Contents || []).filter((c) => c.Key !== undefined);
    const n = contents.length;
    const keys = new Array(n);
    const etags = new Array(n);
    const sizes = new Float64Array(n);
    const modified = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const c = contents[i];
      keys[i] = c.Key;
      etags[i] = c.ETag;
      sizes[i] = c.Size || 0;
      modified[i] = c.LastModified ? c.LastModified.getTime() : NaN;
    }
    // some stores send a token on the last page; IsTruncated is what says "more"
    const nextToken = out.IsTruncated ? out.NextContinuationToken : undefined;
    token = nextToken;
    if (!nextToken) finished = true;
    const page = { keys, etags, sizes, modified, encoded: out.EncodingType === 'url' };
    if (nextToken) page.nextToken = nextToken;
    parentPort.postMessage({ page }, [sizes.buffer, modified.buffer]);
  }
  busy = false;
}
parentPort.on('message', (m) => {
  if (m.start) {
    job = m.start;
    token = job.startToken;
    credit = job.ahead;
  } else credit += m.more;
  void pump();
});
`;

/** Pages the listing thread may list beyond those the scan has taken (LIST_AHEAD_PAGES). */
export const DEFAULT_LIST_AHEAD = 2;

let sdkPath: string | undefined;
const resolveSdk = (): string => (sdkPath ??= createRequire(import.meta.url).resolve('@aws-sdk/client-s3'));

/**
 * One listing thread, for one listing. Started before it is needed (`S3Store.prepareListing`),
 * it loads the SDK meanwhile; until its listing starts it does not keep the process alive.
 */
export class ListThread {
  private readonly worker: Worker;
  private readonly received: ThreadMessage[] = [];
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private used = false;

  /** `config`: the S3 client's configuration (s3-store.ts builds it), plain values only. */
  constructor(config: S3ClientConfig) {
    this.worker = new Worker(THREAD_CODE, { eval: true, workerData: { sdk: resolveSdk(), config } });
    this.worker.unref();
    this.worker.on('message', (m: ThreadMessage) => {
      this.received.push(m);
      this.woken();
    });
    this.worker.on('error', (err) => {
      this.failure ??= new Error(`the listing thread failed: ${err.message}`);
      this.woken();
    });
    this.worker.on('exit', (code) => {
      this.failure ??= new Error(`the listing thread stopped (exit code ${code})`);
      this.woken();
    });
  }

  /**
   * The listing's pages in order, each made a ListPage by `toPage` (the store's decoding of
   * keys, ETags and times), a failed call thrown as `toError` makes it. The thread ends
   * once the pages are all taken, the listing failed, or the caller stops iterating.
   */
  async *pages(
    request: ListingRequest,
    toPage: (columns: ListedColumns) => ListPage,
    toError: (shape: SdkErrorShape) => Error,
  ): AsyncGenerator<ListPage> {
    if (this.used) throw new Error('a listing thread lists once');
    this.used = true;
    const { ahead } = request;
    if (!Number.isInteger(ahead) || ahead < 1) throw new Error(`ahead must be 1 or more, got ${ahead}`);
    const worker = this.worker;
    try {
      worker.ref();
      worker.postMessage({ start: { ...request } });
      for (;;) {
        while (this.received.length === 0) {
          if (this.failure) throw this.failure;
          await new Promise<void>((resolve) => (this.wake = resolve));
        }
        const m = this.received.shift()!;
        if ('error' in m) throw toError(m.error);
        const page = m.page;
        // taken: the thread may list one more
        if (page.nextToken !== undefined) worker.postMessage({ more: 1 });
        yield toPage(page);
        if (page.nextToken === undefined) return;
      }
    } finally {
      await this.close();
    }
  }

  /** Stops the thread. */
  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    this.failure ??= new Error('the listing thread was closed');
    this.woken();
    await this.worker.terminate();
  }

  private woken(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

export type { ListedColumns };
