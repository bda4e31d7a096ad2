/**
 * Peer (b): what a TypeScript user would pick instead of our pipeline: LangChain.js's
 * indexing API, `index()` from @langchain/core/indexing with a record manager, over
 * `QdrantVectorStore` from @langchain/qdrant, with an `Embeddings` class for this API
 * written as a careful user would:
 * - 20 texts a request (the model's cap), every request through LangChain's own caller
 *   (`this.caller.call`: an AsyncCaller with maxConcurrency and maxRetries), the batches
 *   of one `embedDocuments` call sent concurrently within maxConcurrency;
 * - a 429 is thrown as an error LangChain retries on and waits for: the provider sends
 *   no Retry-After, and LangChain's default handler gives up at once on a headerless
 *   429 ("capacity"), so the error carries `retry-after: 1` (the provider's per-second
 *   window); AsyncCaller then waits max(1 s, its exponential backoff) and retries;
 * - any other non-2xx is thrown with its status (400-class ones are not retried).
 * A document loader lists the bucket and reads each text (a few GETs at once).
 *
 * Run by the bench as a child process; settings from PEER_* variables; prints `RESULT {json}`.
 */
import { BaseDocumentLoader } from '@langchain/core/document_loaders/base';
import { Document } from '@langchain/core/documents';
import { Embeddings } from '@langchain/core/embeddings';
import type { EmbeddingsParams } from '@langchain/core/embeddings';
import { index } from '@langchain/core/indexing';
import { QdrantVectorStore } from '@langchain/qdrant';
import pLimit from 'p-limit';
import { EMBEDDING_PATH } from '../../src/api.js';
import type { ApiErrorBody, ApiSuccessBody } from '../../src/api.js';
import { getText, listKeys, peerEnv, printResult } from './common.js';
import type { PeerEnv } from './common.js';
import { InMemoryRecordManager } from './record-manager.js';

interface DashScopeEmbeddingsOptions {
  readonly apiKey: string;
  readonly baseUrl: string;
  readonly model: string;
  readonly dimension?: number;
  readonly textsPerRequest: number;
}

class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly headers: Record<string, string>,
  ) {
    super(message);
  }
}

export class DashScopeEmbeddings extends Embeddings {
  requests = 0;
  throttled = 0;

  constructor(
    private readonly options: DashScopeEmbeddingsOptions,
    params: EmbeddingsParams,
  ) {
    super(params);
  }

  async embedDocuments(texts: string[]): Promise<number[][]> {
    const batches: string[][] = [];
    for (let i = 0; i < texts.length; i += this.options.textsPerRequest)
      batches.push(texts.slice(i, i + this.options.textsPerRequest));
    const vectors = await Promise.all(batches.map((batch) => this.caller.call(() => this.request(batch))));
    return vectors.flat();
  }

  async embedQuery(text: string): Promise<number[]> {
    const [vector] = await this.caller.call(() => this.request([text]));
    if (!vector) throw new Error('no vector returned');
    return vector;
  }

  private async request(texts: string[]): Promise<number[][]> {
    this.requests += 1;
    const response = await fetch(`${this.options.baseUrl}${EMBEDDING_PATH}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.options.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: this.options.model,
        input: { contents: texts.map((text) => ({ text })) },
        parameters: this.options.dimension ? { dimension: this.options.dimension } : {},
      }),
    });
    const body = (await response.json()) as ApiSuccessBody | ApiErrorBody;
    if (response.status === 429) {
      this.throttled += 1;
      const e = body as ApiErrorBody;
      throw new ApiError(`429 ${e.code}: ${e.message}`, 429, {
        'retry-after': response.headers.get('retry-after') ?? '1',
      });
    }
    if (!response.ok || !('output' in body)) {
      const e = body as ApiErrorBody;
      throw new ApiError(`${response.status} ${e.code}: ${e.message}`, response.status, {});
    }
    const out: number[][] = new Array<number[]>(texts.length);
    for (const e of body.output.embeddings) out[e.index] = e.embedding;
    return out;
  }
}

class S3TextLoader extends BaseDocumentLoader {
  constructor(private readonly env: PeerEnv) {
    super();
  }

  async load(): Promise<Document[]> {
    const keys = await listKeys(this.env.s3, this.env.bucket);
    const limit = pLimit(this.env.options.fetchConcurrency ?? 8);
    return Promise.all(
      keys.map((key) =>
        limit(
          async () =>
            new Document({
              pageContent: await getText(this.env.s3, this.env.bucket, key),
              metadata: { source: `s3://${this.env.bucket}/${key}` },
            }),
        ),
      ),
    );
  }
}

const env = peerEnv();
const t0 = performance.now();
const embeddings = new DashScopeEmbeddings(
  { apiKey: env.apiKey, baseUrl: env.baseUrl, model: env.model, textsPerRequest: env.options.textsPerRequest ?? 20 },
  { maxConcurrency: env.options.maxConcurrency ?? 4, maxRetries: env.options.maxRetries ?? 8 },
);
const vectorStore = new QdrantVectorStore(embeddings, {
  url: env.qdrantUrl,
  ...(env.qdrantApiKey ? { apiKey: env.qdrantApiKey } : {}),
  collectionName: env.collection,
});
const loaded = await new S3TextLoader(env).load();
const loadedS = (performance.now() - t0) / 1000;
const result = await index({
  docsSource: loaded,
  recordManager: new InMemoryRecordManager(),
  vectorStore,
  options: { batchSize: env.options.batchSize ?? 100, cleanup: 'incremental', sourceIdKey: 'source' },
});
const seconds = (performance.now() - t0) / 1000;
printResult({
  objects: result.numAdded,
  listed: loaded.length,
  seconds,
  loadS: loadedS,
  objectsPerS: result.numAdded / seconds,
  requests: embeddings.requests,
  throttled: embeddings.throttled,
  ...result,
});
